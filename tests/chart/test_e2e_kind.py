"""hack/e2e-kind.sh cannot run here (no Docker engine); these tests keep it wired to the tested pieces:
the same values file, images, claims, MLflow address and quickstart manifest."""

from __future__ import annotations

import re
import subprocess

import yaml

from helpers.cluster import REPO_ROOT
from kubetune.api.locations import parse_data_path
from kubetune.api.spec import FineTuneRunSpec

SCRIPT = REPO_ROOT / "hack" / "e2e-kind.sh"
KIND = REPO_ROOT / "hack" / "kind"


def script() -> str:
    return SCRIPT.read_text()


def docs(path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_script_uses_the_tested_chart_values_and_quickstart():
    text = script()
    assert '"$ROOT/charts/kubetune"' in text
    assert '--values "$ROOT/hack/kind/values.yaml"' in text
    assert '"$ROOT/examples/quickstart.yaml"' in text


def test_built_images_are_the_ones_the_values_name():
    values = yaml.safe_load((KIND / "values.yaml").read_text())
    operator = f"{values['image']['repository']}:{values['image']['tag']}"
    trainer = values["config"]["images"]["trainer"]
    assert f"--target operator -t {operator} " in script()
    assert f"--target trainer -t {trainer} " in script()
    assert f"kind load docker-image --name \"$CLUSTER\" {operator} {trainer}" in script()


def test_claims_and_mlflow_match_the_values():
    config = yaml.safe_load((KIND / "values.yaml").read_text())["config"]
    claims = {d["metadata"]["name"] for d in docs(KIND / "storage.yaml") if d["kind"] == "PersistentVolumeClaim"}
    assert config["checkpoints"]["claimName"] in claims and "kubetune-quickstart" in claims
    service = next(d for d in docs(KIND / "mlflow.yaml") if d["kind"] == "Service")
    port = service["spec"]["ports"][0]["port"]
    assert config["mlflow"]["trackingUri"] == f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{port}"


def test_rewritten_quickstart_reads_model_and_data_from_the_claim():
    sed = re.search(r"^sed (.+?) \\\n\s+\"\$ROOT/examples/quickstart.yaml\"", script(), re.M | re.S)
    assert sed, "the quickstart rewrite moved; keep this test in step"
    expressions = re.findall(r"-e '([^']+)'", sed.group(0))
    result = subprocess.run(["sed", *sum((["-e", e] for e in expressions), [])],
                            input=(REPO_ROOT / "examples" / "quickstart.yaml").read_text(),
                            capture_output=True, text=True, check=True)
    spec = FineTuneRunSpec.parse(yaml.safe_load(result.stdout)["spec"])
    for path in (spec.train_data_path, spec.eval_data_path):
        location = parse_data_path(path)
        assert (location.kind, location.claim) == ("pvc", "kubetune-quickstart")
        assert (REPO_ROOT / "examples" / location.path.lstrip("/")).exists()
    assert spec.model.startswith("pvc://kubetune-quickstart/models/")
    assert (REPO_ROOT / "examples" / spec.model.removeprefix("pvc://kubetune-quickstart/")).is_dir()
    assert spec.compute is None, "the run uses the kind values' default (CPU) pool"
