"""`from kubetune import foundation_model as fm`: Databricks' foundation_model API on Kubernetes.

    run = fm.create(model="meta-llama/Llama-3.2-3B-Instruct",
                    train_data_path="pvc://datasets/chat/train.jsonl",
                    register_to="main.finetunes")
    for event in fm.get_events(run, follow=True):
        print(event)

A drop-in for Databricks' `databricks.model_training.foundation_model`: the same functions, arguments,
run fields, statuses and helper types (tests/unit/test_sdk_databricks_surface.py compares the two), plus
Kubetune's own (delete, follow, configure, compute, name, namespace).

Runs are FineTuneRun objects in the current kubeconfig context's namespace;
`fm.configure(namespace=..., kubeconfig=..., context=...)` points elsewhere.
"""

from kubetune.api.errors import SpecError
from kubetune.api.progress import CheckpointRef
from kubetune.sdk.api import cancel, create, delete, follow, get, get_checkpoints, get_events, get_models, list
from kubetune.sdk.client import configure
from kubetune.sdk.databricks_types import CheckpointPath, ObjectList, TrainConfig, TrainingModelConstants
from kubetune.sdk.errors import (
    AccessDeniedError,
    ClusterUnavailableError,
    CrdNotInstalledError,
    KubeconfigError,
    KubetuneError,
    RunAlreadyExistsError,
    RunNotFoundError,
    RunRejectedError,
)
from kubetune.sdk.events import EventType, TrainingEvent
from kubetune.sdk.run import FinetuningRun, TrainingRun
from kubetune.sdk.status import RunStatus

__all__ = [
    "AccessDeniedError",
    "CheckpointPath",
    "CheckpointRef",
    "ClusterUnavailableError",
    "CrdNotInstalledError",
    "EventType",
    "FinetuningRun",
    "KubeconfigError",
    "KubetuneError",
    "ObjectList",
    "RunAlreadyExistsError",
    "RunNotFoundError",
    "RunRejectedError",
    "RunStatus",
    "SpecError",
    "TrainConfig",
    "TrainingEvent",
    "TrainingModelConstants",
    "TrainingRun",
    "cancel",
    "configure",
    "create",
    "delete",
    "follow",
    "get",
    "get_checkpoints",
    "get_events",
    "get_models",
    "list",
]
