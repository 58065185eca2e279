"""The CR phase → Databricks status table, and the run object read from a FineTuneRun."""

from datetime import datetime, timezone

import pytest

from helpers.run_objects import make_run
from kubetune.api.status import Phase
from kubetune.sdk.run import CREATED_BY_ANNOTATION, TrainingRun
from kubetune.sdk.status import RunStatus, run_status


@pytest.mark.parametrize(
    "phase,suspended,training_started,expected",
    [
        (None, False, False, RunStatus.PENDING),
        (Phase.PENDING, False, False, RunStatus.PENDING),
        (Phase.VALIDATING, False, False, RunStatus.PENDING),
        (Phase.QUEUED, False, False, RunStatus.QUEUED),
        (Phase.RUNNING, False, False, RunStatus.STARTING),
        (Phase.RUNNING, False, True, RunStatus.RUNNING),
        (Phase.REGISTERING, False, True, RunStatus.TERMINATING),
        (Phase.SUCCEEDED, False, True, RunStatus.COMPLETED),
        (Phase.FAILED, False, False, RunStatus.FAILED),
        (Phase.CANCELLED, True, True, RunStatus.STOPPED),
        # Cancelling: suspend is set and the operator has not finished stopping the pods yet.
        (Phase.QUEUED, True, False, RunStatus.TERMINATING),
        (Phase.RUNNING, True, True, RunStatus.TERMINATING),
        (None, True, False, RunStatus.TERMINATING),
        # A run that had ended stays ended even if someone suspends it afterwards.
        (Phase.SUCCEEDED, True, True, RunStatus.COMPLETED),
        (Phase.FAILED, True, False, RunStatus.FAILED),
    ],
)
def test_status_table(phase, suspended, training_started, expected):
    assert run_status(phase, suspended=suspended, training_started=training_started) is expected
    # The API server hands the phase over as a plain string.
    if phase is not None:
        assert run_status(phase.value, suspended=suspended, training_started=training_started) is expected


def test_every_phase_has_a_status():
    assert {run_status(p) for p in Phase} <= set(RunStatus)


def test_terminal_statuses_are_the_terminal_phases():
    assert {run_status(p) for p in Phase if p.is_terminal} == {s for s in RunStatus if s.is_terminal()}


def test_a_phase_from_a_newer_operator_is_UNKNOWN():
    assert run_status("Hibernating") is RunStatus.UNKNOWN


def test_status_from_string():
    assert RunStatus.from_string("running") is RunStatus.RUNNING
    assert str(RunStatus.COMPLETED) == "COMPLETED"
    assert RunStatus.from_string("DONE") is RunStatus.UNKNOWN  # as Databricks' from_string
    with pytest.raises(ValueError, match="unknown run status 'DONE'"):
        RunStatus.parse("DONE")  # what list(statuses=...) uses: a typo must not match nothing silently


def test_statuses_are_ordered_as_databricks_orders_them():
    assert RunStatus.PENDING < RunStatus.RUNNING < RunStatus.COMPLETED
    assert RunStatus.RUNNING.before(RunStatus.COMPLETED) and RunStatus.COMPLETED.after(RunStatus.RUNNING)
    assert RunStatus.COMPLETED.after(RunStatus.COMPLETED, inclusive=True)
    assert RunStatus.order[0] is RunStatus.FAILED and RunStatus.order[-1] is RunStatus.UNKNOWN
    assert RunStatus.RUNNING.display_name == "Running"


def test_running_becomes_RUNNING_once_the_trainer_reports():
    starting = make_run("r", phase="Running", events=[("STARTED", "2025-01-01T00:01:00Z", "")])
    assert TrainingRun.from_resource(starting).status is RunStatus.STARTING
    training = make_run(
        "r", phase="Running", status={"progress": {"step": 3, "totalSteps": 10, "percent": 30}},
        events=[("STARTED", "2025-01-01T00:01:00Z", "")],
    )
    assert TrainingRun.from_resource(training).status is RunStatus.RUNNING
    initialized = make_run("r", phase="Running", events=[("MODEL_INITIALIZED", "2025-01-01T00:02:00Z", "")])
    assert TrainingRun.from_resource(initialized).status is RunStatus.RUNNING


def test_run_object_fields():
    resource = make_run(
        "support-bot",
        created="2025-03-01T10:00:00Z",
        phase="Running",
        learningRate="5e-06",
        contextLength=4096,
        evalDataPath="pvc://datasets/chat/eval.jsonl",
        evalPrompts=["hi"],
        customWeightsPath="earlier-run",
        experimentPath="/Users/team-a/bot",
        compute={"pool": "h100", "gpus": 8},
        annotations={CREATED_BY_ANNOTATION: "ana@example.com"},
        status={
            "message": "training: epoch 1/3",
            "startTime": "2025-03-01T10:05:00Z",
            "progress": {"epoch": 1, "totalEpochs": 3, "step": 50, "totalSteps": 168, "percent": 30,
                         "eta": "2025-03-01T11:00:00Z", "display": "30% ETA 40m"},
            "metrics": {"trainLoss": 1.71, "tokensPerSecond": 5300.0},
            "checkpoints": [{"name": "ep1-ba56", "path": "pvc://ckpt/support-bot/ep1-ba56", "step": 56}],
            "mlflow": {"experimentId": "7", "runId": "abc"},
            "restarts": 1,
            "someFieldFromANewerOperator": {"x": 1},
        },
    )
    run = TrainingRun.from_resource(resource)
    assert (run.name, run.namespace, run.status, run.phase) == ("support-bot", "team-a", RunStatus.RUNNING, "Running")
    assert run.model == "meta-llama/Llama-3.2-1B-Instruct"
    assert run.train_data_path == "pvc://datasets/chat/train.jsonl"
    assert run.register_to == "main.finetunes" and run.task_type == "CHAT_COMPLETION"
    assert run.training_duration == "1ep" and run.learning_rate == 5e-6 and run.context_length == 4096
    assert run.eval_data_path.endswith("eval.jsonl") and run.eval_prompts == ["hi"]
    assert run.custom_weights_path == "earlier-run" and run.submitted_experiment_path == "/Users/team-a/bot"
    assert run.created_at == datetime(2025, 3, 1, 10, tzinfo=timezone.utc)
    assert run.started_at == datetime(2025, 3, 1, 10, 5, tzinfo=timezone.utc)
    assert run.estimated_end_time == datetime(2025, 3, 1, 11, tzinfo=timezone.utc)
    assert run.completed_at is None
    assert run.details == "training: epoch 1/3"
    assert (run.experiment_id, run.run_id) == ("7", "abc")
    assert run.progress.percent == 30 and run.metrics.train_loss == 1.71
    assert [c.name for c in run.checkpoints] == ["ep1-ba56"]
    assert run.restarts == 1 and run.compute == {"pool": "h100", "gpus": 8}
    assert run.created_by == "ana@example.com"
    assert [e.type for e in run.events] == ["CREATED"]


def test_no_eta_once_training_finished_or_ended():
    status = {"progress": {"percent": 100, "eta": "2025-03-01T11:00:00Z"}}
    finished = make_run("r", phase="Running", status=status, events=[("TRAIN_FINISHED", "2025-03-01T10:59:00Z", "")])
    assert TrainingRun.from_resource(finished).estimated_end_time is None
    done = make_run("r", phase="Succeeded", status={**status, "completionTime": "2025-03-01T11:02:00Z"})
    run = TrainingRun.from_resource(done)
    assert run.estimated_end_time is None
    assert run.completed_at == datetime(2025, 3, 1, 11, 2, tzinfo=timezone.utc)


def test_registered_model_and_a_fresh_run():
    done = make_run("r", phase="Succeeded", status={"registeredModel": {"name": "main.finetunes.r", "version": "3"}})
    assert TrainingRun.from_resource(done).registered_model.version == "3"
    fresh = TrainingRun.from_resource(make_run("r"))
    assert fresh.status is RunStatus.PENDING and fresh.phase is None and fresh.checkpoints == []
    assert fresh.learning_rate is None and fresh.progress is None and fresh.registered_model is None


def test_a_malformed_status_part_is_dropped_not_fatal():
    resource = make_run("r", phase="Running", status={"progress": {"percent": 250}, "checkpoints": [{"name": "x"}]})
    run = TrainingRun.from_resource(resource)
    assert run.progress is None and run.checkpoints == []
