"""Runs that cannot fit, cannot start, fail, are cancelled, deleted, or lose their operator mid-run."""

import time

import pytest
from kubernetes import client as k8s

from helpers.operator_driver import example_run

pytestmark = pytest.mark.cluster


def no_validation(name: str, **spec: object) -> dict:
    return example_run(name, validateInputs=False, **spec)


def test_too_few_gpus_in_the_pool_stays_queued_with_the_reason(runs):
    name = runs.apply(no_validation("big", compute={"pool": "a10g", "gpus": 16}))

    def unschedulable():
        status = runs.status(name)
        scheduled = next((c for c in status.get("conditions", []) if c["type"] == "Scheduled"), {})
        return status if scheduled.get("reason") == "Unschedulable" else None

    status = runs.wait_for("the Unschedulable condition", unschedulable, 60)
    assert status["phase"] == "Queued"
    assert "cannot be scheduled on pool 'a10g'" in status["message"]
    assert "Warning" in {e.type for e in runs.events(name) if e.reason == "Unschedulable"}


def test_unknown_pool_fails_with_reason_and_event(runs):
    name = runs.apply(no_validation("lost", compute={"pool": "tpu-v5", "gpus": 8}))
    status = runs.wait_phase(name, "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec" and "spec.compute.pool" in failed["message"]
    # The Event is posted right after the status write that recorded the transition: wait for it.
    warnings = runs.wait_for("the Warning Event", lambda: [e.reason for e in runs.events(name) if e.type == "Warning"], 10)
    assert warnings == ["InvalidSpec"]
    assert runs.jobs(name) == []


def test_failed_pod_resumes_as_the_next_attempt(runs):
    name = runs.apply(no_validation("flaky"))
    runs.wait_pods_running("flaky-train-0", 2)
    runs.finish_pods("flaky-train-0", 137, only=1)
    runs.wait_pods_running("flaky-train-1", 2, timeout=60)
    status = runs.wait_phase(name, "Running")
    assert status["restarts"] == 1
    assert sorted(j.metadata.name for j in runs.jobs(name)) == ["flaky-train-0", "flaky-train-1"]
    assert [runs.trainer_config(f"flaky-train-{n}").attempt for n in (0, 1)] == [0, 1]
    assert any(e.reason == "RestartingFromCheckpoint" for e in runs.events(name))


def test_cancel_stops_pods_and_keeps_checkpoints(runs):
    name = runs.apply(no_validation("stop-me"))
    runs.wait_phase(name, "Running")
    runs.custom.patch_namespaced_custom_object("kubetune.io", "v1alpha1", runs.namespace, "finetuneruns", name, {"spec": {"suspend": True}})
    status = runs.wait_phase(name, "Cancelled")
    assert status["events"][-1]["type"] == "CANCELED"
    runs.wait_for("jobs deleted", lambda: runs.jobs(name) == [], 30)
    runs.wait_for("pods gone", lambda: runs.pods("stop-me-train-0") == [], 60)
    claim = runs.core.read_namespaced_persistent_volume_claim("kubetune-checkpoints", runs.namespace)
    assert claim.metadata.deletion_timestamp is None


def test_delete_garbage_collects_every_child(runs):
    name = runs.apply(no_validation("gone"))
    runs.wait_phase(name, "Running")
    runs.kubectl("delete", "ftr", name, "--wait=true", "--timeout=30s")

    def children():
        ns = runs.namespace
        return (
            runs.jobs(name)
            + runs.core.list_namespaced_config_map(ns, label_selector=f"kubetune.io/run={name}").items
            + runs.core.list_namespaced_service(ns, label_selector=f"kubetune.io/run={name}").items
            + runs.core.list_namespaced_service_account(ns, label_selector=f"kubetune.io/run={name}").items
            + k8s.RbacAuthorizationV1Api(runs.api).list_namespaced_role(ns, label_selector=f"kubetune.io/run={name}").items
        )

    runs.wait_for("children garbage collected", lambda: children() == [], 60)
    assert runs.core.read_namespaced_persistent_volume_claim("kubetune-checkpoints", runs.namespace)


def test_operator_restart_mid_run_duplicates_nothing(runs, operator):
    name = runs.apply(no_validation("steady"))
    runs.wait_phase(name, "Running")
    before = runs.status(name)
    reasons_before = sorted(e.reason for e in runs.events(name))
    operator.kill()
    operator.start()
    time.sleep(6)  # several resync intervals of the new operator
    after = runs.status(name)
    assert [j.metadata.name for j in runs.jobs(name)] == ["steady-train-0"]
    assert len(runs.pods("steady-train-0")) == 2
    assert after["events"] == before["events"] and after["conditions"] == before["conditions"]
    assert sorted(e.reason for e in runs.events(name)) == reasons_before
    runs.finish_pods("steady-train-0", 1)
    runs.wait_for("restart after the crash", lambda: runs.status(name).get("restarts") == 1, 30)
    runs.wait_pods_running("steady-train-1", 2)


def test_a_user_error_fails_the_run_at_once_with_the_trainers_message(runs):
    """torchrun exits 1 whatever its workers exit with: the trainer's marked termination message is what
    says a retry cannot help, and the run fails without a second attempt."""
    from kubetune.api.failures import user_error_message

    name = runs.apply(no_validation("bad-data"))
    runs.wait_pods_running("bad-data-train-0", 2)
    runs.finish_pods("bad-data-train-0", 1, only=0, message=user_error_message("train.jsonl:3: messages[1].role is 'user'"))
    status = runs.wait_phase(name, "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "UserError" and failed["message"].endswith("train.jsonl:3: messages[1].role is 'user'")
    assert status["restarts"] == 0
    assert [j.metadata.name for j in runs.jobs(name)] == ["bad-data-train-0"]


def test_a_run_recreated_after_an_orphaning_delete_adopts_nothing_of_the_old_one(runs):
    """`kubectl delete ftr --cascade=orphan` leaves the Jobs; a new run of the same name must not take them."""
    cpu = {"pool": "cpu", "gpus": 0}  # leave the GPU nodes to the other tests while the orphans live
    name = runs.apply(no_validation("again", compute=cpu))
    runs.wait_pods_running("again-train-0", 1)
    runs.kubectl("delete", "ftr", name, "--cascade=orphan", "--wait=true")
    runs.wait_for("the old run gone", lambda: not runs.custom.list_namespaced_custom_object(
        "kubetune.io", "v1alpha1", runs.namespace, "finetuneruns")["items"], 30)
    name = runs.apply(no_validation("again", compute=cpu))
    status = runs.wait_phase(name, "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ChildRejected" and "kubectl delete job again-train-0" in failed["message"]
    [old] = runs.jobs(name)
    assert not old.metadata.owner_references  # orphaned: the garbage collector dropped the old owner
    runs.batch.delete_namespaced_job(old.metadata.name, runs.namespace, propagation_policy="Foreground")
    runs.wait_for("the orphans gone", lambda: runs.pods("again-train-0") == [], 60)
