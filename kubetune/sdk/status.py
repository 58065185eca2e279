"""Databricks' run statuses, derived from a FineTuneRun's phase.

| CR phase     | condition                           | RunStatus   |
|--------------|-------------------------------------|-------------|
| (none yet)   | the operator has not seen the run    | PENDING     |
| Pending      |                                     | PENDING     |
| Validating   | inputs checked before asking for GPUs | PENDING   |
| Queued       | waiting for GPUs (Kueue or the pool) | QUEUED      |
| Running      | pods started, no training progress yet | STARTING  |
| Running      | the trainer has reported progress    | RUNNING     |
| Registering  | training finished, registering in MLflow | TERMINATING |
| any non-final | spec.suspend is true (being cancelled) | TERMINATING |
| Succeeded    |                                     | COMPLETED   |
| Failed       |                                     | FAILED      |
| Cancelled    |                                     | STOPPED     |

Validating maps to PENDING rather than STARTING because our validation runs
before the run is queued; statuses then only move forward, as on Databricks
(PENDING → QUEUED → STARTING → RUNNING → TERMINATING → COMPLETED).
"""

from enum import Enum

from kubetune.api.status import Phase


class RunStatus(str, Enum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED)

    @classmethod
    def from_string(cls, value: "str | RunStatus") -> "RunStatus":
        try:
            return cls(str(value).upper())
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown run status {value!r}: expected one of {known}") from None


_BY_PHASE = {
    Phase.PENDING: RunStatus.PENDING,
    Phase.VALIDATING: RunStatus.PENDING,
    Phase.QUEUED: RunStatus.QUEUED,
    Phase.RUNNING: RunStatus.RUNNING,
    Phase.REGISTERING: RunStatus.TERMINATING,
    Phase.SUCCEEDED: RunStatus.COMPLETED,
    Phase.FAILED: RunStatus.FAILED,
    Phase.CANCELLED: RunStatus.STOPPED,
}


def run_status(phase: Phase | str | None, suspended: bool = False, training_started: bool = False) -> RunStatus:
    """The Databricks status of a run in `phase`; see the module table."""
    if phase is None or phase == "":
        return RunStatus.TERMINATING if suspended else RunStatus.PENDING
    status = _BY_PHASE[Phase(phase)]
    if status.is_terminal:
        return status
    if suspended:
        return RunStatus.TERMINATING
    if status is RunStatus.RUNNING and not training_started:
        return RunStatus.STARTING
    return status
