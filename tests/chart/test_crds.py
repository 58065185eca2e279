"""The chart's CRDs: the FineTuneRun CRD is the generated one; kopf's peering CRDs come with the subchart."""

from __future__ import annotations

import yaml

from helpers.cluster import REPO_ROOT
from helpers.helm import CHART
from kubetune.api.crd import CRD_FILE, render_crd


def test_chart_crd_is_the_generated_crd():
    chart_crd = (CHART / "crds" / CRD_FILE).read_text()
    assert chart_crd == (REPO_ROOT / "crds" / CRD_FILE).read_text(), "run `kubetune crd --write`"
    assert chart_crd == render_crd(), "run `kubetune crd --write`"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD_FILE], "only generated files belong in crds/"


def test_kopf_peering_crds_are_served_kopf_dev_v1():
    docs = [d for d in yaml.safe_load_all((CHART / "charts/kopf-peering/crds/kopf.dev_peerings.yaml").read_text()) if d]
    shapes = {(d["spec"]["names"]["kind"], d["spec"]["scope"]) for d in docs}
    assert shapes == {("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced")}
    for doc in docs:
        assert doc["spec"]["group"] == "kopf.dev"
        assert [(v["name"], v["served"], v["storage"]) for v in doc["spec"]["versions"]] == [("v1", True, True)]
