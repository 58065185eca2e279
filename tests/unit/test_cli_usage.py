"""status.usage in the SDK run object, `kubetune list -o wide` and the `kubetune get` page."""

from datetime import datetime, timezone

from helpers.run_objects import make_run
from kubetune.cli.runs import describe, render_runs
from kubetune.sdk.run import TrainingRun

NOW = datetime(2025, 1, 1, 1, 0, tzinfo=timezone.utc)
USAGE = {"pool": "h100", "gpus": 16, "gpuSeconds": 7200, "queueWaitSeconds": 70, "timeToFirstStepSeconds": 30}


def run(name: str, **usage) -> TrainingRun:
    status = {"usage": {**USAGE, **usage}} if usage is not None else {}
    return TrainingRun.from_resource(make_run(name, phase="Running", status=status))


def columns(table: str) -> list[dict[str, str]]:
    header, *rows = table.splitlines()
    names = header.split()
    return [dict(zip(names, row.split())) for row in rows]


def test_sdk_run_carries_usage():
    usage = run("priced", estimatedCost=4.0).usage
    assert (usage.gpu_seconds, usage.queue_wait_seconds, usage.estimated_cost) == (7200, 70, 4.0)
    assert TrainingRun.from_resource(make_run("fresh", phase="Pending")).usage is None


def test_wide_list_shows_usage_and_cost_only_where_priced():
    priced, unpriced = columns(render_runs([run("priced", estimatedCost=4.0), run("free")], "wide", NOW))
    assert (priced["GPU-SECONDS"], priced["QUEUE-WAIT-S"], priced["FIRST-STEP-S"], priced["COST"]) == ("7200", "70", "30", "4")
    assert unpriced["COST"] == "-"
    fresh = TrainingRun.from_resource(make_run("fresh", phase="Pending"))
    assert columns(render_runs([fresh], "wide", NOW))[0]["GPU-SECONDS"] == "-"


def test_get_page_shows_usage():
    page = describe(run("priced", estimatedCost=4.0), NOW)
    assert "7200 GPU-seconds (2.00 GPU-hours) on 16 GPUs of pool h100" in page
    assert "Queue wait:        70 s" in page and "Estimated cost:    4.00" in page
    assert "Estimated cost" not in describe(run("free"), NOW)
