"""The helper types Databricks' foundation_model functions return, so code written against them keeps working.

ObjectList      what list(), get_events() and get_models() return: a real list that also has Databricks'
                `.data`, `.to_pandas()` and notebook rendering
CheckpointPath  a checkpoint as get_checkpoints() returns it: the path string, carrying Kubetune's name/step/epoch
TrainConfig     a run's submitted configuration (`run.submitted_config`), with Databricks' field names
TrainingModelConstants  one model get_models() lists: name, display_name, max_context_length
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from html import escape
from typing import Any

import yaml

from kubetune.api.progress import CheckpointRef
from kubetune.api.supported_models import ModelInfo


class ObjectList(list):
    """A list of runs, events or models; `display_columns` are the attributes a table shows."""

    def __init__(self, items: Any = (), display_columns: dict[str, str] | None = None):
        super().__init__(items)
        self._columns = dict(display_columns or {})

    @property
    def display_columns(self) -> dict[str, str]:
        """Attribute → column title, for to_pandas() and notebook tables."""
        return self._columns

    @property
    def data(self) -> ObjectList:
        """The items (Databricks' ObjectList keeps them in `.data`)."""
        return self

    def to_pandas(self) -> Any:
        """A DataFrame with one row per item and the display columns (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from error
        return pd.DataFrame({label: [getattr(item, attr, None) for item in self] for attr, label in self.display_columns.items()})

    def _repr_html_(self) -> str:
        header = "".join(f"<th>{escape(label)}</th>" for label in self.display_columns.values())
        rows = "".join(
            "<tr>" + "".join(f"<td>{escape(str(getattr(item, attr, '') or '-'))}</td>" for attr in self.display_columns) + "</tr>"
            for item in self
        )
        return f'<table border="1" class="dataframe"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'


RUN_COLUMNS = {
    "name": "Name", "run_progress": "Status", "model": "Model", "learning_rate": "Learning Rate",
    "training_duration": "Training Duration", "train_data_path": "Train Data Path", "register_to": "Register To",
}
EVENT_COLUMNS = {"type": "Type", "time": "Time", "message": "Message"}
MODEL_COLUMNS = {"display_name": "Model Name", "name": "Input Name", "max_context_length": "Maximum Context Length"}


class CheckpointPath(str):
    """Where a checkpoint is (what Databricks' get_checkpoints returns: a path string): pvc://CLAIM/… in a
    cluster, a local path in local mode. It also carries Kubetune's name, step, epoch, creation time and
    `mlflow_uri` (runs:/…/checkpoints/<name>, where MLflow lists it); each of these forms is a customWeightsPath."""

    name: str
    step: int
    epoch: int | None
    created_at: datetime | None
    mlflow_uri: str | None

    def __new__(cls, ref: CheckpointRef) -> CheckpointPath:
        path = super().__new__(cls, ref.location or ref.path)
        path.name, path.step, path.epoch, path.created_at = ref.name, ref.step, ref.epoch, ref.created_at
        path.mlflow_uri = ref.mlflow_uri
        path._ref = ref
        return path

    @property
    def path(self) -> str:
        return str.__str__(self)

    def __reduce__(self) -> tuple:
        return (CheckpointPath, (self._ref,))


@dataclass
class TrainingModelConstants:
    """A model runs can fine-tune: its name (create's `model`), a name for people, and its longest context."""

    name: str
    display_name: str
    max_context_length: int

    @classmethod
    def from_model_info(cls, info: ModelInfo) -> TrainingModelConstants:
        display = info.name.rsplit("/", 1)[-1].replace("-", " ")
        return cls(name=info.name, display_name=display, max_context_length=info.max_context_length)


@dataclass
class TrainConfig:
    """What was submitted for a run, under Databricks' names. `save_folder` is where checkpoints are written
    (None until the first one); `experiment_tracker` is {"mlflow": {"experiment_path", "model_registry_path"}}."""

    model: str
    train_data_path: str
    save_folder: str | None = None
    task_type: str | None = "INSTRUCTION_FINETUNE"
    eval_data_path: str | None = None
    eval_prompts: builtins.list[str] | None = None
    custom_weights_path: str | None = None
    training_duration: str | None = None
    training_durations: builtins.list[str] | None = None
    experiment_tracker: dict[str, Any] | None = None
    learning_rate: float | None = None
    learning_rates: builtins.list[float] | None = None
    context_length: int | None = None
    data_prep_config: dict[str, Any] | None = None
    disable_credentials_check: bool | None = None

    def __str__(self) -> str:
        return yaml.safe_dump(asdict(self))

    @classmethod
    def from_dict(cls, dict_to_use: dict[str, Any], show_unused_warning: bool = True) -> TrainConfig:
        """A configuration from a dict of these fields; unknown keys are an error (dropped if not show_unused_warning)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(dict_to_use) - known)
        if unknown and show_unused_warning:
            raise ValueError(f"unknown fields in training config: {', '.join(unknown)}")
        return cls(**{k: v for k, v in dict_to_use.items() if k in known and v is not None})

    @classmethod
    def from_file(cls, path: str) -> TrainConfig:
        """A configuration from a YAML file of these fields."""
        with open(path, encoding="utf-8") as file:
            return cls.from_dict(yaml.safe_load(file) or {})

    def to_file(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.to_yaml())

    def to_yaml(self) -> str:
        """The configuration as YAML, without unset fields."""
        return yaml.safe_dump({k: v for k, v in asdict(self).items() if v})
