"""What the CLI writes: the progress line on a terminal and nothing like it elsewhere (`events --follow`,
`run --local`'s events), `--version`, the exit codes in `--help`, and `list -o` / `-A` (no cluster needed)."""

import io
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from helpers.run_objects import make_run
from kubetune.api.progress import TrainerReport
from kubetune.cli.events import follow_with_progress, run_progress_text
from kubetune.cli.main import build_parser, main
from kubetune.cli.progress_line import ProgressLine, progress_text
from kubetune.cli.runs import render_runs
from kubetune.local.events import EventPrinter
from kubetune.sdk.run import TrainingRun

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
BAR_CHARACTERS = re.compile("[\r█▏▎▍▌▋▊▉|]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def running(percent: int, step: int, loss: float, eta_seconds: int, **status) -> TrainingRun:
    eta = (NOW + timedelta(seconds=eta_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return TrainingRun.from_resource(make_run("support-bot", phase=status.pop("phase", "Running"), status={
        "progress": {"percent": percent, "step": step, "totalSteps": 50, "eta": eta, "display": f"{percent}% ETA 7s"},
        "metrics": {"trainLoss": loss}, **status,
    }))


def test_the_progress_line_says_each_fact_once():
    assert progress_text("RUNNING", 62, 31, 50, 2.0, 7) == "RUNNING 62% step 31/50 loss 2.00 ETA 7s"
    assert progress_text("RUNNING", 62, loss=1.71234) == "RUNNING 62% loss 1.71"
    assert progress_text("QUEUED") == "QUEUED"
    assert run_progress_text(running(62, 31, 2.0, 7), NOW) == "RUNNING 62% step 31/50 loss 2.00 ETA 7s"


def test_a_line_is_drawn_only_on_a_terminal():
    pipe, terminal = io.StringIO(), Terminal()
    for stream in (pipe, terminal):
        line = ProgressLine(stream)
        line.show("RUNNING 10%")
        line.print_above("an event", stream)
        line.show("RUNNING 20%")
        line.clear()
    assert pipe.getvalue() == "an event\n"
    assert terminal.getvalue() == (
        "\rRUNNING 10%" + "\r           \r" + "an event\n" + "\rRUNNING 10%" + "\rRUNNING 20%" + "\r           \r"
    )


def follow_script(monkeypatch):
    from kubetune import foundation_model as fm

    events = [{"type": "CREATED", "time": "2025-03-01T11:59:00Z", "message": "Run created."}]
    done = events + [{"type": "COMPLETED", "time": "2025-03-01T12:00:09Z", "message": "Registered main.ft version 1."}]
    runs = [running(62, 31, 2.0, 7, events=events), running(100, 50, 1.5, 0, phase="Succeeded", events=done)]
    monkeypatch.setattr(fm, "follow", lambda name, poll_seconds: iter(runs))


def test_following_into_a_pipe_writes_event_lines_only(monkeypatch, capsys):
    follow_script(monkeypatch)
    assert str(follow_with_progress("support-bot", 0).status) == "COMPLETED"
    out, err = capsys.readouterr()
    assert err == ""
    assert [line.split()[1] for line in out.splitlines()] == ["CREATED", "COMPLETED"]
    assert not BAR_CHARACTERS.search(out) and "%" not in out


def test_following_on_a_terminal_redraws_one_clean_line(monkeypatch):
    follow_script(monkeypatch)
    out, err = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    follow_with_progress("support-bot", 0)
    drawn = [text.rstrip() for text in err.getvalue().split("\r") if text.strip()]
    assert re.fullmatch(r"RUNNING 62% step 31/50 loss 2\.00( ETA \d+[smhd])?", drawn[0]), drawn
    assert drawn[-1] == "COMPLETED 100% step 50/50 loss 1.50"
    assert all(d.count("%") == 1 and "," not in d and "█" not in d for d in drawn)
    assert err.getvalue().endswith("\r")  # the line is gone when the command ends
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["CREATED", "COMPLETED"]


def report(step: int, **fields) -> TrainerReport:
    return TrainerReport.model_validate({
        "stage": "TRAINING", "updatedAt": NOW.isoformat(), "epoch": 1, "totalEpochs": 1, "step": step, "totalSteps": 50,
        "trainLoss": 2.0, **fields,
    })


def feed(printer: EventPrinter) -> None:
    clock = iter(range(1000))
    printer.clock = lambda: float(next(clock))
    for step in range(1, 51):
        printer.progress(report(step))
    printer.close()


def test_local_mode_into_a_log_writes_event_lines_only():
    log = io.StringIO()
    feed(EventPrinter(out=log))
    lines = log.getvalue().splitlines()
    assert not BAR_CHARACTERS.search(log.getvalue()) and "step/s" not in log.getvalue()
    assert all(re.match(r"\d\d:\d\d:\d\d [A-Z_]+", line) for line in lines), lines
    assert 10 <= sum("TRAIN_UPDATED" in line for line in lines) <= 11


@pytest.mark.parametrize("eval_loss, lines", [(None, 1), (1.5, 2)])
def test_a_checkpoint_completing_after_its_steps_update_prints_only_what_is_new(eval_loss, lines):
    """Asynchronous saves: the last step's update, then the same step with its checkpoint done; a second line
    only when the checkpoint brought a figure (its eval loss), never the same line twice."""
    log = io.StringIO()
    printer = EventPrinter(out=log, clock=lambda: 0.0)
    printer.progress(report(50))
    printer.progress(report(50, checkpoints=[{"name": "ep1-ba50", "path": "/c/ep1-ba50", "step": 50}], evalLoss=eval_loss))
    updates = [line.split("TRAIN_UPDATED", 1)[1].strip() for line in log.getvalue().splitlines() if "TRAIN_UPDATED" in line]
    assert updates[0] == "[epoch=1/1][batch=50/50] Train loss: 2" and len(updates) == lines == len(set(updates)), updates


def test_local_mode_on_a_terminal_redraws_one_line_under_the_events():
    terminal = Terminal()
    feed(EventPrinter(out=terminal))
    text = terminal.getvalue()
    assert "\rTRAINING 40% step 20/50 loss 2.00 ETA 30s" in text
    assert text.endswith("\r")
    events = [line.split("\r")[-1] for line in text.split("\n") if line.split("\r")[-1]]
    assert all(re.match(r"\d\d:\d\d:\d\d [A-Z_]+", e) for e in events), events
    assert sum("TRAIN_UPDATED" in e for e in events) >= 10
    assert EventPrinter(out=Terminal(), show_bar=False)._line.enabled is False  # --no-progress-bar


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"kubetune {version('kubetune')} (API kubetune.io/v1alpha1)\n"


def test_help_lists_the_exit_codes():
    text = build_parser().format_help()
    for code in ("0  success", "1  the run failed", "2  usage or input error", "3  the Kubernetes API server"):
        assert code in text
    assert "plan-memory 3 does not fit" in text
    guide = (Path(__file__).resolve().parents[2] / "docs" / "user-guide.md").read_text()
    for row in ("| 0 | success", "| 1 | the run failed", "| 2 | usage or input error", "| 3 | the Kubernetes API server"):
        assert row in guide


@pytest.fixture
def runs():
    return [
        TrainingRun.from_resource(make_run("support-bot", namespace="team-a", phase="Succeeded", status={
            "registeredModel": {"name": "main.ft.support_bot", "version": "2"}, "restarts": 1,
            "message": "Registered\nversion 2."})),
        TrainingRun.from_resource(make_run("fresh", namespace="team-b")),
    ]


def test_list_output_formats(runs):
    assert render_runs(runs, "name", NOW) == "finetunerun.kubetune.io/support-bot\nfinetunerun.kubetune.io/fresh\n"
    for output, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        listed = parse(render_runs(runs, output, NOW))
        assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
        assert [(i["kind"], i["metadata"]["name"]) for i in listed["items"]] == [("FineTuneRun", "support-bot"), ("FineTuneRun", "fresh")]
    assert parse(render_runs([], "json", NOW))["items"] == []

    wide = render_runs(runs, "wide", NOW, all_namespaces=True).splitlines()
    assert wide[0].split() == ["NAMESPACE", "NAME", "STATUS", "PROGRESS", "LOSS", "MODEL", "AGE", "GPU-SECONDS", "QUEUE-WAIT-S",
                               "FIRST-STEP-S", "COST", "REGISTERED", "RESTARTS", "PREEMPTIONS", "MESSAGE"]
    assert wide[1].split()[:3] == ["team-a", "support-bot", "COMPLETED"]
    assert wide[1].endswith("main.ft.support_bot v2   1          0             Registered version 2.")
    assert render_runs(runs, None, NOW).splitlines()[0].split() == ["NAME", "STATUS", "PROGRESS", "LOSS", "MODEL", "AGE"]
