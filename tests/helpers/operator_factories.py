"""Small factories for operator tests: configs, runs, Jobs and pods as the API server would return them."""

from datetime import UTC, datetime
from typing import Any

from kubetune.api.progress import TrainerReport
from kubetune.api.status import FineTuneRunStatus
from kubetune.api.trainer_config import TrainerConfig
from kubetune.operator import names
from kubetune.operator.builders.common import RunRef
from kubetune.operator.config import OperatorConfig
from kubetune.operator.observe import JobView, PodView
from kubetune.operator.reconcile import RunView

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
# Most tests register to main.finetunes from any namespace: they allow every target, and the access tests
# (tests/unit/test_access_rules.py, tests/operator/test_access.py) use the real default.
ALLOW_EVERY_TARGET = {"default": {"registerTo": ["*.*"], "experimentPaths": ["**"]}}


def make_config(**overrides: Any) -> OperatorConfig:
    data = {
        "pools": {
            "h100": {
                "nodeSelector": {"kubetune.io/pool": "h100"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "gpusPerNode": 8,
                "cpu": "90",
                "memory": "900Gi",
                "sharedMemory": "64Gi",
            },
            "a10g": {"nodeSelector": {"kubetune.io/pool": "a10g"}, "gpusPerNode": 1},
            "cpu": {"nodeSelector": {"kubetune.io/pool": "cpu"}, "gpusPerNode": 0, "cpu": "2", "memory": "8Gi"},
        },
        "defaults": {"pool": "h100", "validationPool": "cpu", "maxRestarts": 2},
        "mlflow": {"trackingUri": "http://mlflow:5000", "credentialsSecret": "mlflow-credentials"},
        "access": ALLOW_EVERY_TARGET,
    }
    data.update(overrides)
    return OperatorConfig.model_validate(data)


def make_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "model": "meta-llama/Llama-3.2-1B-Instruct",
        "trainDataPath": "s3://bucket/train.jsonl",
        "registerTo": "main.finetunes",
        "compute": {"pool": "h100", "gpus": 16},
    }
    spec.update(overrides)
    return spec


REF = RunRef("chat", "team-a", "uid-1")


def make_run(spec: dict | None = None, status: dict | None = None, report: TrainerReport | None = None, **kw) -> RunView:
    return RunView(
        ref=kw.pop("ref", REF),
        generation=kw.pop("generation", 1),
        spec=spec if spec is not None else make_spec(),
        status=FineTuneRunStatus.model_validate(status or {}),
        report=report,
        labels=kw.pop("labels", {}),
    )


def make_report(**overrides: Any) -> TrainerReport:
    data = {"stage": "TRAINING", "updatedAt": NOW.isoformat(), "step": 50, "totalSteps": 100, "epoch": 1, "totalEpochs": 2}
    data.update(overrides)
    return TrainerReport.model_validate(data)


def make_job(name: str = "chat-train-0", pods: int = 2, phase: str = "Running", **kw: Any) -> JobView:
    pod_list = kw.pop("pod_list", None)
    if pod_list is None:
        pod_list = [PodView(f"{name}-{i}", phase, node=f"node-{i}" if phase != "Pending" else None) for i in range(pods)]
    return JobView(name=name, pods=pod_list, **kw)


def raw_job(name: str, conditions: list[dict] | None = None, suspend: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"suspend": suspend}, "status": {"conditions": conditions or []}}


def raw_pod(name: str, phase: str = "Running", node: str | None = "n1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"nodeName": node} if node else {}, "status": {"phase": phase, **status}}


def trainer_config_of(job: dict[str, Any]) -> TrainerConfig:
    """The trainer configuration a training Job (a manifest, or as the API server returns it) gives its pods."""
    template = job["spec"]["template"]
    return TrainerConfig.parse(template["metadata"]["annotations"][names.TRAINER_CONFIG_ANNOTATION])
