"""`helm upgrade` brings the FineTuneRun CRD to the chart's schema when `crds.manage` is on, and `helm
uninstall` leaves the CRD and its runs (docs/operator-guide.md, "Upgrading").

Real helm, real API server. Other tests share the cluster's FineTuneRun CRD, so the chart under test is a
copy whose CRD serves a group of the test's own (finetuneruns.ktNNNNNN.test.kubetune.io); nothing else
differs. The "old" chart is that copy with a CRD one release behind: no `stallTimeoutSeconds` in the spec
(its CEL rule gone with it) and no Preemptions printer column.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers.cluster import kubectl, kubectl_binary
from helpers.helm import CHART, HelmError, one, run_helm
from kubetune.api import KIND, PLURAL, VERSION
from kubetune.api.crd import CRD_FILE

REMOVED_FIELD = "stallTimeoutSeconds"
REMOVED_COLUMN = "Preemptions"


@dataclass
class Charts:
    old: Path
    new: Path
    group: str

    @property
    def crd(self) -> str:
        return f"{PLURAL}.{self.group}"

    def run(self, name: str, **spec: object) -> dict:
        return {
            "apiVersion": f"{self.group}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": name},
            "spec": {"model": "meta-llama/Llama-3.2-1B-Instruct", "trainDataPath": "s3://b/train.jsonl",
                     "registerTo": "main.finetunes", **spec},
        }


def chart_copy(folder: Path, group: str, behind: bool) -> Path:
    """The chart with its CRD serving `group`; `behind`: without REMOVED_FIELD and REMOVED_COLUMN."""
    shutil.copytree(CHART, folder)
    path = folder / "crds" / CRD_FILE
    crd = yaml.safe_load(path.read_text())
    crd["metadata"]["name"] = f"{PLURAL}.{group}"
    crd["spec"]["group"] = group
    if behind:
        version = crd["spec"]["versions"][0]
        version["additionalPrinterColumns"] = [c for c in version["additionalPrinterColumns"] if c["name"] != REMOVED_COLUMN]
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        del spec["properties"][REMOVED_FIELD]
        spec["x-kubernetes-validations"] = [r for r in spec["x-kubernetes-validations"] if r.get("fieldPath") != f".{REMOVED_FIELD}"]
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return folder


@pytest.fixture
def charts(tmp_path, kubeconfig):
    group = f"kt{uuid.uuid4().hex[:6]}.test.kubetune.io"
    copies = Charts(chart_copy(tmp_path / "old", group, behind=True), chart_copy(tmp_path / "new", group, behind=False), group)
    try:
        yield copies
    finally:
        subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "delete", "crd", copies.crd, "--ignore-not-found",
                        "--wait=false"], capture_output=True)


@pytest.fixture
def release(helm, kubeconfig, namespace):
    """A release name in the test's namespace (also the one namespace it watches), uninstalled after the test."""
    name = f"kt-{uuid.uuid4().hex[:6]}"
    try:
        yield name
    finally:
        try:
            run_helm(helm, "uninstall", name, "--namespace", namespace, "--wait", kubeconfig=kubeconfig)
        except HelmError:
            pass  # the test uninstalled it


def helm_in(helm, kubeconfig: str, namespace: str, *args: str) -> str:
    return run_helm(helm, *args, "--namespace", namespace, "--set", f"watchNamespaces={{{namespace}}}",
                    "--set", f"peering.name=kt-{namespace[-6:]}", kubeconfig=kubeconfig)


def served(kubeconfig: str, crd: str) -> dict:
    """The CRD as the API server has it: its metadata, printer columns and spec fields."""
    found = json.loads(kubectl(kubeconfig, "get", "crd", crd, "-o", "json"))
    version = found["spec"]["versions"][0]
    return {
        "metadata": found["metadata"],
        "columns": [c["name"] for c in version.get("additionalPrinterColumns", [])],
        "fields": set(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]),
    }


def assert_current(kubeconfig: str, charts: Charts) -> None:
    crd = served(kubeconfig, charts.crd)
    assert REMOVED_COLUMN in crd["columns"] and REMOVED_FIELD in crd["fields"]
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{charts.crd}")


def apply_run(kubeconfig: str, namespace: str, run: dict) -> dict:
    kubectl(kubeconfig, "apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(run))
    return json.loads(kubectl(kubeconfig, "get", f"{PLURAL}.{run['apiVersion'].split('/')[0]}", run["metadata"]["name"],
                              "-n", namespace, "-o", "json"))


def uninstall_keeps_the_crd_and_runs(helm, kubeconfig: str, namespace: str, release: str, charts: Charts) -> None:
    output = run_helm(helm, "uninstall", release, "--namespace", namespace, "--wait", kubeconfig=kubeconfig)
    assert charts.crd in output and "resource policy" in output, output
    assert REMOVED_FIELD in served(kubeconfig, charts.crd)["fields"]
    names = kubectl(kubeconfig, "get", charts.crd, "-n", namespace, "-o", "name").split()
    assert len(names) == 2, names


def test_the_managed_crd_is_the_generated_crd_kept_on_uninstall(render):
    assert not [o for o in render() if o["kind"] == "CustomResourceDefinition"]  # default: crds/ only
    crd = one(render(set={"crds.manage": "true", "crds.annotations.argocd\\.argoproj\\.io/sync-options": "ServerSideApply=true"}),
              "CustomResourceDefinition")
    generated = yaml.safe_load((CHART / "crds" / CRD_FILE).read_text())
    assert crd["spec"] == generated["spec"] and crd["metadata"]["name"] == generated["metadata"]["name"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep", "argocd.argoproj.io/sync-options": "ServerSideApply=true"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/component"] == "crd"


@pytest.mark.cluster
def test_an_existing_release_adopts_its_crd_and_upgrades_it(helm, kubeconfig, namespace, charts, release):
    # A release installed before crds.manage: Helm created the CRD from crds/, and never touches it again.
    helm_in(helm, kubeconfig, namespace, "install", release, str(charts.old))
    assert REMOVED_FIELD not in served(kubeconfig, charts.crd)["fields"]
    apply_run(kubeconfig, namespace, charts.run("before"))

    with pytest.raises(HelmError, match="invalid ownership metadata"):
        helm_in(helm, kubeconfig, namespace, "upgrade", release, str(charts.new), "--set", "crds.manage=true")

    # The adoption step of docs/operator-guide.md.
    kubectl(kubeconfig, "label", "crd", charts.crd, "app.kubernetes.io/managed-by=Helm")
    kubectl(kubeconfig, "annotate", "crd", charts.crd, f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}")
    helm_in(helm, kubeconfig, namespace, "upgrade", release, str(charts.new), "--set", "crds.manage=true")

    assert_current(kubeconfig, charts)
    assert served(kubeconfig, charts.crd)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    run = apply_run(kubeconfig, namespace, charts.run("after", stallTimeoutSeconds=600))
    assert run["spec"][REMOVED_FIELD] == 600  # served by the new schema, not pruned
    uninstall_keeps_the_crd_and_runs(helm, kubeconfig, namespace, release, charts)


@pytest.mark.cluster
def test_a_managed_crd_follows_every_upgrade(helm, kubeconfig, namespace, charts, release):
    # Managed from the first install. Helm creates crds/ before the templates, so the install takes the CRD
    # over from crds/ (without --take-ownership it refuses; --skip-crds would skip kopf's peering CRDs too).
    with pytest.raises(HelmError, match="invalid ownership metadata"):
        helm_in(helm, kubeconfig, namespace, "install", release, str(charts.old), "--set", "crds.manage=true")
    helm_in(helm, kubeconfig, namespace, "install", release, str(charts.old), "--set", "crds.manage=true", "--take-ownership")
    assert REMOVED_COLUMN not in served(kubeconfig, charts.crd)["columns"]
    apply_run(kubeconfig, namespace, charts.run("before"))

    helm_in(helm, kubeconfig, namespace, "upgrade", release, str(charts.new), "--set", "crds.manage=true")

    assert_current(kubeconfig, charts)
    apply_run(kubeconfig, namespace, charts.run("after", stallTimeoutSeconds=600))
    uninstall_keeps_the_crd_and_runs(helm, kubeconfig, namespace, release, charts)
