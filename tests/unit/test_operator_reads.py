"""What a reconcile reads and when its own status write needs another one (kubetune.operator.handlers).

- the run's Jobs and pods come from kopf's indexes, except while a Job this process created is not in its
  index yet: then from the API server, so a just-created Job is never taken for a lost one;
- the watch event of the operator's own status write is skipped only when deciding again on the written
  status (with the Jobs just created) changes nothing; a preempted attempt's next Job needs that reconcile.
"""

import pytest

from helpers.operator_factories import NOW, make_config, make_job, make_run, make_spec
from kubetune.operator import handlers
from kubetune.operator.reconcile import Observed, decide


class FakeIndex(dict):
    """kopf.Index as the reconcile uses it: key -> an iterable of stored objects."""


def job(name: str) -> dict:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": {}, "status": {}}


@pytest.fixture
def indexes(monkeypatch):
    jobs, pods = FakeIndex(), FakeIndex()
    monkeypatch.setattr(handlers, "_indexes", {"jobs": jobs, "pods": pods, "reports": FakeIndex()})
    monkeypatch.setattr(handlers, "_created_jobs", {})
    listed = []
    monkeypatch.setattr(handlers.kube, "list_jobs", lambda api, ns, run: listed.append("jobs") or [job("chat-train-0")])
    return jobs, pods, listed


def test_jobs_and_pods_come_from_the_indexes(indexes):
    jobs, pods, listed = indexes
    jobs[("team-a", "chat")] = [job("chat-validate")]
    pods[("team-a", "chat")] = [{"metadata": {"name": "chat-validate-0"}}]
    found, found_pods = handlers._read_jobs_and_pods(None, "team-a", "chat")
    assert [j["metadata"]["name"] for j in found] == ["chat-validate"] and len(found_pods) == 1
    assert listed == []


def test_a_created_job_the_index_has_not_shown_is_read_from_the_api_server(indexes):
    jobs, _, listed = indexes
    jobs[("team-a", "chat")] = [job("chat-validate")]
    handlers._created_jobs[("team-a", "chat")] = {"chat-train-0"}
    found, found_pods = handlers._read_jobs_and_pods(None, "team-a", "chat")
    assert listed == ["jobs"] and found_pods is None  # pods listed too, by observe
    assert [j["metadata"]["name"] for j in found] == ["chat-train-0"]
    # Once the index shows it, the index is enough again.
    jobs[("team-a", "chat")] = [job("chat-validate"), job("chat-train-0")]
    handlers._read_jobs_and_pods(None, "team-a", "chat")
    assert listed == ["jobs"] and handlers._created_jobs == {}


def test_without_indexes_every_read_goes_to_the_api_server(monkeypatch):
    monkeypatch.setattr(handlers, "_indexes", {})
    monkeypatch.setattr(handlers.kube, "list_jobs", lambda api, ns, run: [])
    assert handlers._read_jobs_and_pods(None, "team-a", "chat") == ([], None)


def first_step(**spec):
    config = make_config()
    run = make_run(spec=make_spec(**spec))
    plan = decide(run, Observed(), config, NOW)
    return config, run, plan


@pytest.mark.parametrize("validate", [True, False])
def test_the_write_that_creates_the_first_job_needs_no_reconcile_after_it(validate):
    config, run, plan = first_step(validateInputs=validate)
    assert any(m["kind"] == "Job" for m in plan.create)
    assert handlers._settles(run, Observed(), plan, plan.status, config, NOW)


def test_a_preempted_attempt_needs_the_reconcile_that_creates_the_next_job():
    config, run, plan = first_step(validateInputs=False)
    queued = make_run(spec=run.spec, status=plan.status.model_dump(by_alias=True, mode="json", exclude_none=True))
    preempted = make_job("chat-train-0", failed=True, failure_message="DisruptionTarget: preempted")
    observed = Observed(training=preempted, job_names=["chat-train-0"])
    after = decide(queued, observed, config, NOW)
    assert after.status.preemptions == 1 and not after.create  # the next Job comes from the next reconcile
    assert not handlers._settles(queued, observed, after, after.status, config, NOW)
