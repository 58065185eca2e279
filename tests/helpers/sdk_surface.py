"""The public surface of a foundation_model SDK, as JSON: what a user's code can name.

Run by the databricks-genai venv's python on Databricks' package (`python sdk_surface.py databricks`) and
imported by the test on Kubetune's (`surface("kubetune")`), so both sides are described by one function.
Standard library only: the databricks-genai venv has nothing of Kubetune's.

functions   name -> parameters [name, kind, default repr] of each public function of the fm module
classes     name -> {"fields": dataclass fields in order, "properties", "methods": name -> parameters}
statuses    RunStatus members in definition order; status_order: RunStatus.order
terminal_events  the event types TrainingEvent.is_terminal_state() accepts (from Databricks' literal list)
path_forms  path -> what Databricks' format_path makes of it (Kubetune: databricks_form)
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import types

# Paths whose reading is compared (format_path / databricks_form): every Databricks form and near misses.
SAMPLE_PATHS = [
    "/Volumes/main/default/vol/train.jsonl", "/Volumes", "/databricks/mlflow-tracking/1/abc/artifacts/ep1-ba2",
    "dbfs:/Volumes/main/default/vol/train.jsonl", "main.default.chat", "org/dataset/train", "dataset/train",
    "/data/train.jsonl", "./train.jsonl", "s3://bucket/train.jsonl", "/VolumesX/a", "Volumes/main/default/vol/x",
]
# The event types of Databricks' docs: which of them end a run is what is compared.
EVENT_TYPES = ["CREATED", "STARTED", "DATA_VALIDATED", "MODEL_INITIALIZED", "TRAIN_UPDATED", "TRAIN_FINISHED",
               "COMPLETED", "FAILED", "CANCELED", "STOPPED"]


def parameters(function) -> list[list[str]]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    return [
        [p.name, p.kind.name, "<required>" if p.default is inspect.Parameter.empty else repr(p.default)]
        for p in signature.parameters.values()
    ]


def describe_class(cls) -> dict:
    fields = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    properties, methods = [], {}
    # The class's own and inherited attributes (inspect.getmembers hides an Enum's methods).
    names = {n for c in cls.__mro__ if c is not object for n in vars(c) if not n.startswith("_") and n not in fields}
    for name in sorted(names):
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, (property, types.DynamicClassAttribute)):
            properties.append(name)
        elif isinstance(raw, (staticmethod, classmethod)):
            methods[name] = parameters(getattr(cls, name))
        elif callable(raw) and not isinstance(raw, (type, cls)):
            methods[name] = parameters(raw)[1:]
    return {"fields": fields, "properties": sorted(properties), "methods": methods}


def surface(package: str) -> dict:
    if package == "databricks":
        from databricks.model_training import foundation_model as fm
        from databricks.model_training.api.validation import format_path
        from databricks.model_training.types.common import ObjectList
        from databricks.model_training.types.run_status import RunStatus
        from databricks.model_training.types.train_config import TrainConfig
        from databricks.model_training.types.training_constants import TrainingModelConstants
        from databricks.model_training.types.training_run import TrainingEvent, TrainingRun

        names = list(fm.__all__)
    else:
        from kubetune import foundation_model as fm
        from kubetune.api.locations import databricks_form as format_path
        from kubetune.sdk.databricks_types import ObjectList, TrainConfig, TrainingModelConstants
        from kubetune.sdk.events import TrainingEvent
        from kubetune.sdk.run import TrainingRun
        from kubetune.sdk.status import RunStatus

        names = [n for n in fm.__all__ if inspect.isfunction(getattr(fm, n))]
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    classes = {
        "TrainingRun": TrainingRun, "TrainingEvent": TrainingEvent, "RunStatus": RunStatus,
        "TrainingModelConstants": TrainingModelConstants, "TrainConfig": TrainConfig, "ObjectList": ObjectList,
    }
    return {
        "functions": {n: parameters(getattr(fm, n)) for n in names},
        "classes": {name: describe_class(cls) for name, cls in classes.items()},
        "statuses": [s.name for s in RunStatus],
        "status_order": [s.name for s in RunStatus.order],
        "terminal_events": [t for t in EVENT_TYPES if TrainingEvent(type=t, time=now, message="").is_terminal_state()],
        "path_forms": {p: format_path(p) for p in SAMPLE_PATHS},
    }


if __name__ == "__main__":
    json.dump(surface(sys.argv[1]), sys.stdout, indent=1)
