"""The FineTuneRun API: typed models that are the one source of truth for the CRD."""

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.spec import Compute, FineTuneRunSpec, TaskType
from kubetune.api.status import FineTuneRunStatus, Phase

GROUP = "kubetune.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FineTuneRun"
PLURAL = "finetuneruns"
SINGULAR = "finetunerun"
SHORT_NAMES = ["ftr"]

__all__ = [
    "API_VERSION",
    "Compute",
    "FineTuneRunSpec",
    "FineTuneRunStatus",
    "GROUP",
    "KIND",
    "PLURAL",
    "Phase",
    "SHORT_NAMES",
    "SINGULAR",
    "SpecError",
    "SpecProblem",
    "TaskType",
    "VERSION",
]
