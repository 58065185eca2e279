"""Every FineTuneRun in examples/ parses with FineTuneRunSpec and is accepted by a real API server."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers.cluster import REPO_ROOT
from kubetune.api import API_VERSION, KIND
from kubetune.api.spec import FineTuneRunSpec

EXAMPLES = REPO_ROOT / "examples"
# One per task type, a run continuing from another's checkpoint, a Kueue-queued run,
# and the operator engineer's multi-node run and quickstart when present.
REQUIRED = [
    "chat-completion.yaml",
    "instruction-finetune.yaml",
    "continued-pretrain.yaml",
    "continue-from-checkpoint.yaml",
    "kueue.yaml",
]


def fine_tune_runs() -> list[str]:
    names = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if any(d.get("kind") == KIND for d in docs):
            names.append(path.name)
    return names


def load(name: str) -> dict:
    (run,) = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
    return run


def test_required_examples_exist():
    assert set(REQUIRED) <= set(fine_tune_runs())


@pytest.mark.parametrize("name", fine_tune_runs())
def test_example_parses(name):
    run = load(name)
    assert run["apiVersion"] == API_VERSION and run["kind"] == KIND
    assert "namespace" not in run["metadata"], "examples are applied with -n <namespace>"
    FineTuneRunSpec.parse(run["spec"])


def test_examples_cover_every_task_type():
    task_types = {FineTuneRunSpec.parse(load(n)["spec"]).task_type for n in REQUIRED}
    assert task_types == {"CHAT_COMPLETION", "INSTRUCTION_FINETUNE", "CONTINUED_PRETRAIN"}


def test_continue_from_checkpoint_names_the_chat_run():
    spec = FineTuneRunSpec.parse(load("continue-from-checkpoint.yaml")["spec"])
    assert spec.custom_weights_path == load("chat-completion.yaml")["metadata"]["name"]


def test_kueue_example_carries_the_queue_label():
    assert load("kueue.yaml")["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]


@pytest.mark.cluster
@pytest.mark.parametrize("name", fine_tune_runs())
def test_example_is_created_by_the_api_server(kubectl, crd_installed, namespace, name):
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / name))
    # As kubectl read it: YAML 1.2, where an unquoted 1e-5 is a number (PyYAML reads a string).
    run = json.loads(kubectl("create", "--dry-run=client", "-o", "json", "-f", str(EXAMPLES / name)))
    stored = json.loads(kubectl("get", "-n", namespace, "finetunerun", run["metadata"]["name"], "-o", "json"))
    # Nothing was pruned or defaulted away by the CRD's schema.
    assert stored["spec"] == {**_defaults(stored["spec"], run["spec"]), **run["spec"]}
    assert stored["metadata"].get("labels", {}) | run["metadata"].get("labels", {}) == stored["metadata"].get("labels", {})


def _defaults(stored: dict, written: dict) -> dict:
    """Fields the API server filled in from the schema's defaults (only those not written)."""
    return {k: v for k, v in stored.items() if k not in written}
