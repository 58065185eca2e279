"""Metric logging behind one small interface; MLflow is imported lazily and used by rank 0 only.

Rank 0 logs to a JSON-lines file in the run's output folder (always: tests and
`kubetune run --local` read it) and to MLflow when a tracking URI is configured.
The other ranks get a NullLogger.
"""

import json
import logging
import time
from pathlib import Path
from typing import Any

from kubetune.api.mlflow_tags import run_filter, run_tags
from kubetune.api.trainer_config import TrainerConfig

log = logging.getLogger(__name__)

GENERATIONS_TABLE = "generations.json"  # MLflow shows it as the table `generations`
EXPORT_ARTIFACT_PATH = "model"


class NullLogger:
    """The logging interface (and what ranks other than 0 get): every call does nothing."""

    experiment_id: str | None = None
    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_generations(self, rows: list[dict[str, Any]], step: int) -> None: ...
    def log_export(self, export_dir: Path) -> str | None: return None
    def close(self, outcome: str) -> None: ...


class JsonlLogger(NullLogger):
    """One JSON object per line: {"kind": "metrics"|"params"|"generations", "step": …, …}; appended across restarts."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps({"time": time.time(), **record}) + "\n")

    def log_params(self, params: dict[str, Any]) -> None:
        self._write({"kind": "params", "params": params})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._write({"kind": "metrics", "step": step, **metrics})

    def log_generations(self, rows: list[dict[str, Any]], step: int) -> None:
        self._write({"kind": "generations", "step": step, "rows": rows})


class MlflowLogger(NullLogger):
    """One MLflow run per FineTuneRun (found again by its uid tag after a restart)."""

    def __init__(self, config: TrainerConfig):
        from mlflow import MlflowClient  # lazy: only rank 0 with a tracking URI pays for the import

        self.client = MlflowClient(config.mlflow_tracking_uri)
        self.experiment_id = self._experiment(config.experiment_path(), config.mlflow_artifact_root)
        self.run_id = self._run(config)

    def _experiment(self, path: str, artifact_root: str | None) -> str:
        experiment = self.client.get_experiment_by_name(path)
        if experiment:
            return experiment.experiment_id
        location = f"{artifact_root.rstrip('/')}/{path.strip('/').replace('/', '_')}" if artifact_root else None
        return self.client.create_experiment(path, artifact_location=location)

    def _run(self, config: TrainerConfig) -> str:
        tags = run_tags(config.run.namespace, config.run.name, config.run.uid)
        found = self.client.search_runs([self.experiment_id], filter_string=run_filter(tags), max_results=1)
        if found:
            self.client.update_run(found[0].info.run_id, status="RUNNING")
            return found[0].info.run_id
        return self.client.create_run(self.experiment_id, run_name=config.run.name, tags=tags).info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]  # params are write-once
        if fresh:
            self.client.log_batch(self.run_id, params=fresh)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_generations(self, rows: list[dict[str, Any]], step: int) -> None:
        import pandas as pd

        self.client.log_table(self.run_id, pd.DataFrame(rows), GENERATIONS_TABLE)

    def log_export(self, export_dir: Path) -> str:
        self.client.log_artifacts(self.run_id, str(export_dir), EXPORT_ARTIFACT_PATH)
        return f"{self.client.get_run(self.run_id).info.artifact_uri}/{EXPORT_ARTIFACT_PATH}"

    def close(self, outcome: str) -> None:
        self.client.set_terminated(self.run_id, status=outcome)


class FanOutLogger(NullLogger):
    """Rank 0's logger: every call goes to each logger; a logging failure is reported, never fatal."""

    def __init__(self, loggers: list[NullLogger]):
        self.loggers = loggers
        mlflow = next((lg for lg in loggers if isinstance(lg, MlflowLogger)), None)
        self.experiment_id = mlflow.experiment_id if mlflow else None
        self.run_id = mlflow.run_id if mlflow else None

    def _each(self, method: str, *args: Any) -> list[Any]:
        results = []
        for logger in self.loggers:
            try:
                results.append(getattr(logger, method)(*args))
            except Exception:  # noqa: BLE001 - metrics must not stop training
                log.exception("%s.%s failed", type(logger).__name__, method)
        return results

    def log_params(self, params: dict[str, Any]) -> None:
        self._each("log_params", params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._each("log_metrics", metrics, step)

    def log_generations(self, rows: list[dict[str, Any]], step: int) -> None:
        self._each("log_generations", rows, step)

    def log_export(self, export_dir: Path) -> str | None:
        return next((uri for uri in self._each("log_export", export_dir) if uri), None)

    def close(self, outcome: str) -> None:
        self._each("close", outcome)


def build_logger(config: TrainerConfig, is_main: bool) -> NullLogger:
    if not is_main:
        return NullLogger()
    loggers: list[NullLogger] = [JsonlLogger(config.metrics_file)]
    if config.mlflow_tracking_uri:
        loggers.append(MlflowLogger(config))
    return FanOutLogger(loggers)
