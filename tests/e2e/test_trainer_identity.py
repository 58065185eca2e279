"""The trainer's identity on the real control plane: it writes its own run's progress report and nothing else.

Every container of a training pod holds the token of the run's trainer ServiceAccount. With that token (from
the TokenRequest API, as the pod would get it) the FineTuneRun's status, phase and registered model are out
of reach, and so is another run's report; its own report moves its run's progress, never its phase.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s

from helpers.operator_driver import example_run
from kubetune import kube_client
from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.api.progress import TrainerReport
from kubetune.operator import names
from kubetune.trainer.progress import KubernetesReporter

pytestmark = [pytest.mark.cluster, pytest.mark.security]

RUN_STATUS_WRITES = {
    "phase": {"status": {"phase": "Succeeded"}},
    "registeredModel": {"status": {"registeredModel": {"name": "main.finetunes.forged", "version": "1"}}},
    "report": {"status": {"report": {"stage": "TRAIN_FINISHED", "updatedAt": "2025-01-01T00:00:00Z"}}},
}


def report(**fields: object) -> TrainerReport:
    return TrainerReport.model_validate({"updatedAt": datetime.now(UTC).isoformat(), **fields})


def forbidden(call, *args) -> bool:
    try:
        call(*args)
    except k8s.ApiException as error:
        assert error.status == 403, (error.status, error.reason)
        return True
    return False


def test_the_trainer_token_writes_its_own_report_and_nothing_the_operator_owns(runs, service_account_kubeconfig):
    mine = runs.apply(example_run("mine", validateInputs=False, compute={"pool": "a10g", "gpus": 1}))
    theirs = runs.apply(example_run("theirs", validateInputs=False, compute={"pool": "a10g", "gpus": 1}))
    runs.wait_phase(mine, "Running")
    runs.wait_phase(theirs, "Running")
    token = kube_client.connect(service_account_kubeconfig(names.trainer_service_account(mine))).api_client
    custom, core = k8s.CustomObjectsApi(token), k8s.CoreV1Api(token)

    # Nothing of the FineTuneRun: not its status (phase, registeredModel, the report mirror), not the run itself.
    for field, body in RUN_STATUS_WRITES.items():
        assert forbidden(custom.patch_namespaced_custom_object_status, GROUP, VERSION, runs.namespace, PLURAL, mine, body), field
    assert forbidden(custom.patch_namespaced_custom_object, GROUP, VERSION, runs.namespace, PLURAL, mine, {"spec": {"suspend": True}})
    assert forbidden(custom.get_namespaced_custom_object, GROUP, VERSION, runs.namespace, PLURAL, mine)
    # Not another run's report, nor its own configuration (its training Job's pod template).
    other = KubernetesReporter(runs.namespace, names.report_config_map(theirs), core=core)
    assert forbidden(other.report, report(stage="TRAINING", step=7, totalSteps=10))
    batch = k8s.BatchV1Api(token)
    assert forbidden(batch.patch_namespaced_job, f"{mine}-train-0", runs.namespace, {"metadata": {"annotations": {"a": "b"}}})

    # Its own report moves its own run's progress.
    own = KubernetesReporter(runs.namespace, names.report_config_map(mine), core=core)
    own.report(report(stage="TRAINING", step=3, totalSteps=10))
    runs.wait_for("the report folded", lambda: (runs.status(mine).get("progress") or {}).get("step") == 3, 30)

    # A report that claims more than the operator saw (training finished, an export) while the Job still runs:
    # progress and history take it, the phase does not.
    own.report(report(stage="TRAIN_FINISHED", step=10, totalSteps=10, exportUri="runs:/0/model", mlflowRunId="0" * 32))
    runs.wait_for("the claim folded", lambda: (runs.status(mine).get("progress") or {}).get("step") == 10, 30)
    time.sleep(3)  # several reconciles (resync every second)
    status = runs.status(mine)
    assert status["phase"] == "Running" and "registeredModel" not in status
    assert not any(c["type"] in ("TrainingSucceeded", "Succeeded") and c["status"] == "True" for c in status["conditions"])
    assert status["report"]["stage"] == "TRAIN_FINISHED"  # the operator's copy, for kubectl and the SDK

    assert runs.status(theirs).get("progress") is None and runs.status(theirs)["phase"] == "Running"


def test_the_trainer_may_do_exactly_what_its_role_declares(runs):
    """Beyond what every ServiceAccount may do, the trainer's identity holds exactly the Role the operator builds
    for it (operator/builders/access.py, next to the reporter that needs it): patch of its own report."""
    from helpers.permissions import beyond_every_service_account, declared
    from kubetune.operator.builders.access import build_role
    from kubetune.operator.builders.common import RunRef

    name = runs.apply(example_run("exact", validateInputs=False, compute={"pool": "a10g", "gpus": 1}))
    runs.wait_phase(name, "Running")
    user = f"system:serviceaccount:{runs.namespace}:{names.trainer_service_account(name)}"
    role = build_role(RunRef(name, runs.namespace, runs.get(name)["metadata"]["uid"]))
    holds = beyond_every_service_account(runs.kubeconfig, runs.namespace, user)
    assert holds == declared(role["rules"]) == {("configmaps", names.report_config_map(name), "patch")}
