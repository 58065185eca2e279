"""A run in a Kueue queue on a cluster without Kueue (the API group kueue.x-k8s.io not served): its Job waits
suspended, and the run says why with a Warning condition and Event instead of waiting without a word.

Not marked `kueue`: it needs the plain test control plane, and runs in `make test`. Its file sorts before the
Kueue tests' (which install Kueue for the session and remove it at its end); where Kueue is served anyway (an
existing cluster that has it), it is skipped."""

import pytest

from helpers.operator_driver import example_run
from kubetune.operator.kueue import KUEUE_GROUP, served_groups

pytestmark = pytest.mark.cluster


def test_a_queued_run_on_a_cluster_without_kueue_is_a_warning(kube_api, runs):
    if KUEUE_GROUP in served_groups(kube_api):
        pytest.skip("this cluster serves Kueue's API group")
    run = example_run("nokueue")
    run["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team"}
    name = runs.apply(run)
    warned = runs.wait_for("the Warning", lambda: [e for e in runs.events(name) if e.reason == "KueueNotInstalled"], 30)
    assert warned[0].type == "Warning" and "no Kueue" in warned[0].message
    status = runs.status(name)
    validated = next(c for c in status["conditions"] if c["type"] == "InputsValidated")
    assert (status["phase"], validated["reason"]) == ("Validating", "KueueNotInstalled")
    assert "kueue.x-k8s.io/queue-name" in status["message"] and not runs.pods("nokueue-validate")
    assert len(warned) == 1
