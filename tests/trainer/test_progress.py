"""Progress reports: the atomic JSON file, throttling, and failures that never reach training."""

import json
from datetime import datetime, timezone

from kubetune.api.progress import CheckpointRef, TrainerReport, TrainerStage
from kubetune.trainer.progress import FileReporter, ThrottledReporter


def _report(stage=TrainerStage.TRAINING, step=1, checkpoints=0) -> TrainerReport:
    refs = [CheckpointRef(name=f"ep0-ba{i}", path=f"/c/ep0-ba{i}", step=i) for i in range(checkpoints)]
    return TrainerReport(stage=stage, updated_at=datetime.now(timezone.utc), step=step, checkpoints=refs)


class Recorder:
    def __init__(self, fail: bool = False):
        self.sent: list[TrainerReport] = []
        self.fail = fail

    def report(self, report: TrainerReport) -> None:
        if self.fail:
            raise ConnectionError("apiserver unreachable")
        self.sent.append(report)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_file_reporter_writes_the_camel_case_report(tmp_path):
    path = tmp_path / "state" / "progress.json"
    FileReporter(path).report(_report(step=7))
    data = json.loads(path.read_text())
    assert data["stage"] == "TRAINING" and data["step"] == 7 and "tokensSeen" in data
    assert TrainerReport.model_validate(data).step == 7
    assert [p.name for p in path.parent.iterdir()] == ["progress.json"]


def test_routine_reports_are_throttled_but_stage_changes_and_checkpoints_pass():
    inner, clock = Recorder(), Clock()
    reporter = ThrottledReporter(inner, min_interval_s=10, clock=clock)
    reporter.report(_report(step=1))
    clock.now = 1
    reporter.report(_report(step=2))  # held back
    reporter.report(_report(step=3, checkpoints=1))  # a new checkpoint: sent
    clock.now = 2
    reporter.report(_report(step=4, checkpoints=1))  # held back
    reporter.report(_report(TrainerStage.TRAIN_FINISHED, step=5, checkpoints=1))  # a new stage: sent
    clock.now = 3
    reporter.report(_report(TrainerStage.TRAIN_FINISHED, step=6, checkpoints=1))
    clock.now = 20
    reporter.report(_report(TrainerStage.TRAIN_FINISHED, step=7, checkpoints=1))  # interval passed: sent
    assert [r.step for r in inner.sent] == [1, 3, 5, 7]


def test_flush_sends_the_last_report_held_back():
    inner, clock = Recorder(), Clock()
    reporter = ThrottledReporter(inner, min_interval_s=10, clock=clock)
    reporter.report(_report(step=1))
    reporter.report(_report(step=2))
    reporter.flush()
    assert [r.step for r in inner.sent] == [1, 2]


def test_a_failing_target_never_raises_and_is_retried(caplog):
    inner = Recorder(fail=True)
    reporter = ThrottledReporter(inner, min_interval_s=10, clock=Clock())
    reporter.report(_report(step=1))
    inner.fail = False
    reporter.report(_report(step=2))  # the failed one was never sent, so this is still news
    assert [r.step for r in inner.sent] == [2]
    assert "progress report failed" in caplog.text


def test_kubernetes_reporter_patches_only_its_report_config_map_key_redacted():
    """One call, on the one object the trainer's Role names: the key both sides share, the report masked."""
    from kubetune.api.progress import REPORT_KEY
    from kubetune.trainer.progress import KubernetesReporter

    class Core:
        calls = []

        def patch_namespaced_config_map(self, name, namespace, body):
            self.calls.append((name, namespace, body))

    report = _report().model_copy(update={"export_uri": "https://u:s3cret@h/model"})
    KubernetesReporter("team-a", "chat-report", core=Core()).report(report)
    [(name, namespace, body)] = Core.calls
    assert (name, namespace, list(body), list(body["data"])) == ("chat-report", "team-a", ["data"], [REPORT_KEY])
    sent = json.loads(body["data"][REPORT_KEY])
    assert sent["stage"] == "TRAINING" and sent["exportUri"] == "https://u:***@h/model"
