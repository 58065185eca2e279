"""Conditions that tell the truth, read the way people and tools read them on the real control plane:
`kubectl wait` on Succeeded/Ready, `kubectl explain` of the status, and a cancelled run that no longer
claims to be scheduled or to have an ETA."""

from datetime import UTC, datetime

import pytest

from helpers.operator_driver import example_run
from kubetune.api.progress import TrainerReport

pytestmark = pytest.mark.cluster


def test_kubectl_wait_sees_a_failed_run_as_not_succeeded_and_not_ready(runs):
    name = runs.apply(example_run("lost", validateInputs=False, compute={"pool": "tpu-v5", "gpus": 8}))
    runs.kubectl("wait", "--for=condition=Succeeded=False", f"ftr/{name}", "--timeout=60s")
    runs.kubectl("wait", "--for=condition=Ready=False", f"ftr/{name}", "--timeout=10s")
    ready = next(c for c in runs.status(name)["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Failed" and "spec.compute.pool" in ready["message"]


def test_a_cancelled_run_is_not_scheduled_and_shows_no_eta(runs):
    name = runs.apply(example_run("halt", validateInputs=False))
    runs.wait_phase(name, "Running")
    runs.report(name, TrainerReport.model_validate({
        "updatedAt": datetime.now(UTC).isoformat(), "stage": "TRAINING", "step": 50, "totalSteps": 100,
        "tokensSeen": 50, "tokensTotal": 100, "tokensPerSecond": 0.5,
    }))
    runs.wait_for("the report's ETA", lambda: "ETA" in (runs.status(name).get("progress") or {}).get("display", ""))
    runs.custom.patch_namespaced_custom_object("kubetune.io", "v1alpha1", runs.namespace, "finetuneruns", name,
                                               {"spec": {"suspend": True}})
    status = runs.wait_phase(name, "Cancelled")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Scheduled"]["status"], conditions["Scheduled"]["reason"]) == ("False", "RunEnded")
    assert (conditions["Succeeded"]["status"], conditions["Succeeded"]["reason"]) == ("False", "RunCancelled")
    assert status["progress"]["display"] == "50%" and "eta" not in status["progress"]
    runs.kubectl("wait", "--for=condition=Succeeded=False", f"ftr/{name}", "--timeout=10s")


def test_kubectl_explain_describes_the_status(runs):
    explained = runs.kubectl("explain", "finetunerun.status.conditions")
    assert "Ready" in explained and "RunEnded" in explained
    assert "Estimated end of training" in runs.kubectl("explain", "finetunerun.status.progress.eta")


def test_a_run_whose_step_stops_advancing_is_stalled(runs):
    name = runs.apply(example_run("quiet", validateInputs=False, stallTimeoutSeconds=3, compute={"pool": "cpu", "gpus": 0}))
    runs.wait_phase(name, "Running")

    def stalled():
        condition = next((c for c in runs.status(name).get("conditions", []) if c["type"] == "Stalled"), None)
        return condition if condition and condition["status"] == "True" else None

    condition = runs.wait_for("the Stalled condition", stalled, 30)
    assert condition["reason"] == "NoProgress" and "3 s without progress" in condition["message"]
    assert "NoProgress" in [e.reason for e in runs.events(name) if e.type == "Warning"]
    assert runs.status(name)["phase"] == "Running"  # the operator's default: report, do not restart
