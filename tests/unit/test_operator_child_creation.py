"""kube.ensure_all: a run's independent children at once, its Job only after all of them (its pods need the
ServiceAccount and the Role), and an error raised only once every creation has finished."""

import threading
import time

import pytest

from kubetune.operator import kube


def manifest(kind: str, name: str) -> dict:
    return {"kind": kind, "metadata": {"namespace": "team-a", "name": name}}


CHILDREN = [manifest("ServiceAccount", "sa"), manifest("Role", "role"), manifest("RoleBinding", "rb"),
            manifest("ConfigMap", "report"), manifest("Job", "train-0")]


def test_the_job_is_created_after_every_other_child_which_are_created_at_once(monkeypatch):
    started, finished, at_once = [], [], threading.Barrier(4, timeout=5)

    def ensure(api, m):
        started.append(m["metadata"]["name"])
        if m["kind"] != "Job":
            at_once.wait()  # returns only when the four others are all under way: they run concurrently
        finished.append(m["metadata"]["name"])
        return m["metadata"]["name"] != "role"  # the Role already existed

    monkeypatch.setattr(kube, "ensure", ensure)
    assert kube.ensure_all(None, CHILDREN) == [True, False, True, True, True]
    assert started[-1] == finished[-1] == "train-0" and set(finished[:4]) == {"sa", "role", "rb", "report"}


def test_an_error_is_raised_after_every_creation_finished_and_no_job_is_created(monkeypatch):
    finished = []

    def ensure(api, m):
        if m["kind"] == "Role":
            raise kube.ChildRejected("the API server rejected Role role")
        time.sleep(0.05)
        finished.append(m["metadata"]["name"])
        return True

    monkeypatch.setattr(kube, "ensure", ensure)
    with pytest.raises(kube.ChildRejected, match="Role role"):
        kube.ensure_all(None, CHILDREN)
    assert sorted(finished) == ["rb", "report", "sa"]
