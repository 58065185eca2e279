"""The real operator's /metrics on the test control plane, read with Prometheus' own text parser, and
status.usage in `kubectl get ftr -o wide`."""

from __future__ import annotations

import re
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from helpers.operator_driver import example_run
from kubetune.api.progress import TrainerReport

pytestmark = pytest.mark.cluster

PRICE = 3.6  # per GPU-hour: 1000 GPU-seconds cost 1.0


@pytest.fixture(scope="module")
def operator_config(operator_config, tmp_path_factory) -> Path:
    config = yaml.safe_load(operator_config.read_text())
    config["pools"]["h100"]["pricePerGpuHour"] = PRICE
    path = tmp_path_factory.mktemp("priced") / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def report(**fields: object) -> TrainerReport:
    return TrainerReport.model_validate({"updatedAt": datetime.now(UTC).isoformat(), **fields})


def scrape(url: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, as Prometheus would read the endpoint."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(scraped: dict, series: str, **labels) -> float | None:
    return scraped.get((series, tuple(sorted(labels.items()))))


def wide_columns(table: str) -> dict[str, str]:
    """kubectl's table by the headers' offsets (a value such as "14% ETA 3s" holds spaces)."""
    header, row = table.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    bounds = zip(starts, [*starts[1:], None])
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


def test_metrics_and_usage_of_a_running_run(runs, operator, namespace):
    name = runs.apply(example_run("gauges", validateInputs=False))
    runs.wait_phase(name, "Running")
    runs.wait_pods_running("gauges-train-0", 2)
    runs.report(name, report(stage="TRAINING", step=7, totalSteps=56, trainLoss=1.5, tokensPerSecond=1234.0))
    runs.wait_for("step 7 in status", lambda: runs.status(name).get("progress", {}).get("step") == 7)
    time.sleep(1.1)  # at least a second of GPU time before the next report
    runs.report(name, report(stage="TRAINING", step=8, totalSteps=56, trainLoss=1.25, tokensPerSecond=1200.0))
    status = runs.wait_for("step 8 in status", lambda: (s := runs.status(name)).get("progress", {}).get("step") == 8 and s)

    usage = status["usage"]
    assert usage["pool"] == "h100" and usage["gpus"] == 16
    assert usage["gpuSeconds"] >= 16 and usage["gpuSeconds"] % 16 == 0  # a second or more on 16 GPUs
    assert usage["queueWaitSeconds"] >= 0 and usage["timeToFirstStepSeconds"] >= 0
    assert usage["estimatedCost"] == round(usage["gpuSeconds"] / 1000, 4)

    run = dict(namespace=namespace, name=name)
    scraped = runs.wait_for(
        "the step in the metrics",
        lambda: (m := scrape(operator.metrics_url)) and sample(m, "kubetune_run_step", **run) == 8 and m,
    )
    assert sample(scraped, "kubetune_runs", namespace=namespace, phase="Running") == 1
    assert sample(scraped, "kubetune_runs", namespace=namespace, phase="Queued") == 0
    assert sample(scraped, "kubetune_run_train_loss", **run) == 1.25
    assert sample(scraped, "kubetune_run_tokens_per_second", **run) == 1200.0
    assert sample(scraped, "kubetune_reconcile_duration_seconds_count") > 0
    assert sample(scraped, "kubetune_gpu_seconds_total", namespace=namespace, pool="h100") == usage["gpuSeconds"]
    assert sample(scraped, "kubetune_run_queue_wait_seconds_count", pool="h100") == 1
    assert sample(scraped, "kubetune_run_time_to_first_step_seconds_count", pool="h100") == 1

    columns = wide_columns(runs.kubectl("get", "ftr", name, "-o", "wide"))
    assert columns["GPU-SECONDS"] == str(runs.status(name)["usage"]["gpuSeconds"])
    assert columns["QUEUE-WAIT-S"] == str(usage["queueWaitSeconds"])
    assert columns["FIRST-STEP-S"] == str(usage["timeToFirstStepSeconds"])
    assert float(columns["COST"]) == runs.status(name)["usage"]["estimatedCost"]

    runs.finish_pods("gauges-train-0", 1)  # a failed attempt: a restart from the checkpoint
    restarts = dict(namespace=namespace, reason="RestartingFromCheckpoint")
    runs.wait_for(
        "the restart counted", lambda: sample(scrape(operator.metrics_url), "kubetune_run_restarts_total", **restarts) == 1
    )

    runs.kubectl("delete", "ftr", name, "--wait=true")
    gone = runs.wait_for(
        "the run's series gone",
        lambda: (m := scrape(operator.metrics_url)) and not [k for k in m if ("name", name) in k[1]] and m,
    )
    assert sample(gone, "kubetune_runs", namespace=namespace, phase="Running") is None
