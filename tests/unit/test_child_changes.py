"""Job and pod events that change nothing a decision reads cost no reconcile (operator/child_changes.py)."""

import copy

from kubetune.operator.child_changes import ChildChanges


def pod(phase="Pending", unschedulable=None, ip=None, rv="1"):
    status = {"phase": phase}
    if unschedulable:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}]
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": "r-train-0-0", "uid": "p1", "resourceVersion": rv}, "status": status}


def job(active=0, suspend=False, complete=False, rv="1"):
    conditions = [{"type": "Complete", "status": "True"}] if complete else []
    return {"metadata": {"name": "r-train-0", "uid": "j1", "resourceVersion": rv}, "spec": {"suspend": suspend},
            "status": {"active": active, "conditions": conditions}}


def test_a_pod_event_reconciles_only_when_its_view_changes():
    changes = ChildChanges()
    assert changes.pod_changed(None, pod())  # first sight (kopf's listing)
    assert not changes.pod_changed("MODIFIED", pod(rv="2"))
    assert changes.pod_changed("MODIFIED", pod(unschedulable="0/2 nodes are available"))
    # The scheduler marks it again with the same verdict: nothing to decide.
    assert not changes.pod_changed("MODIFIED", pod(unschedulable="0/2 nodes are available", rv="3"))
    assert changes.pod_changed("MODIFIED", pod(phase="Running"))
    assert not changes.pod_changed("MODIFIED", pod(phase="Running", ip="10.0.0.7"))
    assert changes.pod_changed("DELETED", pod(phase="Running"))
    assert len(changes) == 0  # a deleted pod is forgotten


def test_a_job_event_reconciles_only_when_its_view_changes():
    changes = ChildChanges()
    assert changes.job_changed("ADDED", job(suspend=True))
    assert changes.job_changed("MODIFIED", job())  # admitted by Kueue
    assert not changes.job_changed("MODIFIED", job(active=2, rv="2"))  # counts only
    assert changes.job_changed("MODIFIED", job(active=0, complete=True))


def test_views_are_kept_per_object():
    changes = ChildChanges()
    other = copy.deepcopy(pod())
    other["metadata"]["uid"] = "p2"
    assert changes.pod_changed("ADDED", pod()) and changes.pod_changed("ADDED", other)
