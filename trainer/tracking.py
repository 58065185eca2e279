"""Metric logging behind one small interface; MLflow is imported lazily and used by rank 0 only.

Rank 0 logs to a JSON-lines file in the run's output folder (always: tests and
`kubetune run --local` read it) and to MLflow when a tracking URI is configured.
The other ranks get a NullLogger.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune.api.mlflow_checkpoints import log_checkpoint_reference
from kubetune.api.mlflow_tags import run_filter, run_tags
from kubetune.api.progress import CheckpointRef
from kubetune.api.trainer_config import TrainerConfig

log = logging.getLogger(__name__)

GENERATIONS_TABLE = "generations.json"  # MLflow shows it as the table `generations`


@dataclass(frozen=True)
class DataInput:
    """A dataset the run read, as MLflow records it: metadata only."""

    context: str  # "training" or "evaluation"
    name: str
    path: str  # as the spec names it (pvc://…, s3://…, a hub id, a local path)
    source_type: str  # the path's kind (kubetune.api.locations)
    digest: str  # a fingerprint of what was trained on: path, example count and token lengths
    profile: dict[str, int]


def data_input(context: str, path: str, stats, example_lengths: list[int]) -> DataInput:
    """`stats` is the dataset's PackingStats, `example_lengths` its examples' token counts."""
    from kubetune.api.locations import parse_data_path

    fingerprint = hashlib.sha256(json.dumps([path, example_lengths]).encode()).hexdigest()[:16]
    profile = {"examples": stats.examples, "sequences": stats.sequences, "tokens": stats.real_tokens,
               "loss_tokens": stats.loss_tokens}
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return DataInput(context, name, path, parse_data_path(path).kind, fingerprint, profile)


class NullLogger:
    """The logging interface (and what ranks other than 0 get): every call does nothing."""

    experiment_id: str | None = None
    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_generations(self, rows: list[dict[str, Any]], step: int) -> None: ...
    def log_datasets(self, datasets: list["DataInput"]) -> None: ...
    def log_export(self, export_dir: Path, task_type: str, model_name: str) -> str | None: return None
    def log_checkpoint(self, checkpoint: CheckpointRef) -> None: ...
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

    def log_datasets(self, datasets: list["DataInput"]) -> None:
        """The train and eval data as the run's inputs: where they are and a fingerprint, never the data."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [
            DatasetInput(
                Dataset(name=d.name, digest=d.digest, source_type=d.source_type, source=json.dumps({"uri": d.path}),
                        profile=json.dumps(d.profile)),
                tags=[InputTag("mlflow.data.context", d.context)],
            )
            for d in datasets
        ]
        self.client.log_inputs(self.run_id, datasets=inputs)

    def log_export(self, export_dir: Path, task_type: str, model_name: str) -> str:
        """The export as the run's logged MLflow model (kubetune.trainer.mlflow_model): `models:/<model_id>`."""
        from kubetune.trainer.mlflow_model import log_model

        return log_model(self.client, self.run_id, self.experiment_id, export_dir, task_type, model_name)

    def log_checkpoint(self, checkpoint: CheckpointRef) -> None:
        """A reference under the run's artifacts (kubetune.api.mlflow_checkpoints), not the weights."""
        log_checkpoint_reference(self.client, self.run_id, checkpoint)

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

    def log_datasets(self, datasets: list["DataInput"]) -> None:
        self._each("log_datasets", datasets)

    def log_export(self, export_dir: Path, task_type: str, model_name: str) -> str | None:
        return next((uri for uri in self._each("log_export", export_dir, task_type, model_name) if uri), None)

    def log_checkpoint(self, checkpoint: CheckpointRef) -> None:
        self._each("log_checkpoint", checkpoint)

    def close(self, outcome: str) -> None:
        self._each("close", outcome)


def build_logger(config: TrainerConfig, is_main: bool) -> NullLogger:
    if not is_main:
        return NullLogger()
    loggers: list[NullLogger] = [JsonlLogger(config.metrics_file)]
    if config.mlflow_tracking_uri:
        loggers.append(MlflowLogger(config))
    return FanOutLogger(loggers)
