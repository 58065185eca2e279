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
| (unknown)    | a phase this SDK does not know (newer operator) | UNKNOWN |

Validating maps to PENDING rather than STARTING because our validation runs
before the run is queued; statuses then only move forward, as on Databricks
(PENDING → QUEUED → STARTING → RUNNING → TERMINATING → COMPLETED).
"""

import re
from enum import Enum, EnumMeta

from kubetune.api.status import Phase


class _StatusMeta(EnumMeta):
    @property
    def order(cls) -> "list[RunStatus]":
        """The statuses from latest to earliest, as Databricks' RunStatus.order lists them."""
        return [RunStatus[name] for name in _LATEST_FIRST]


_LATEST_FIRST = ("FAILED", "STOPPED", "COMPLETED", "TERMINATING", "RUNNING", "STARTING", "QUEUED", "PENDING", "UNKNOWN")


class RunStatus(str, Enum, metaclass=_StatusMeta):
    """Databricks' run statuses, with its helpers (ordering, before/after, is_terminal(), from_string)."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    def _rank(self, other: object) -> tuple[int, int]:
        if not isinstance(other, RunStatus):
            raise TypeError(f"cannot order RunStatus and {type(other).__name__}")
        return -_LATEST_FIRST.index(self.value), -_LATEST_FIRST.index(other.value)

    def __lt__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine < theirs

    def __gt__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine > theirs

    def __le__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine <= theirs

    def __ge__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine >= theirs

    def before(self, other: "RunStatus", inclusive: bool = False) -> bool:
        """Whether a run usually has this status before `other` (PENDING before RUNNING)."""
        return self < other or (inclusive and self is other)

    def after(self, other: "RunStatus", inclusive: bool = False) -> bool:
        """Whether a run usually has this status after `other` (COMPLETED after RUNNING)."""
        return self > other or (inclusive and self is other)

    def is_terminal(self) -> bool:
        """COMPLETED, STOPPED or FAILED: the run has ended (a method, as in Databricks' SDK)."""
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED)

    @property
    def display_name(self) -> str:
        """`Running`, `Completed`: the status as a title."""
        return self.value.title()

    @classmethod
    def from_string(cls, run_status: "str | RunStatus") -> "RunStatus":
        """The status named `run_status` (any case, camelCase too); UNKNOWN for a name it does not know, as Databricks'."""
        if isinstance(run_status, RunStatus):
            return run_status
        if not isinstance(run_status, str):
            return cls.UNKNOWN
        return cls.__members__.get(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", run_status).upper(), cls.UNKNOWN)

    @classmethod
    def parse(cls, value: "str | RunStatus") -> "RunStatus":
        """Like from_string, but a name it does not know is a ValueError (for filters, where a typo matches nothing)."""
        status = cls.from_string(value)
        if status is cls.UNKNOWN and str(value).upper() != cls.UNKNOWN.value:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown run status {value!r}: expected one of {known}")
        return status


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
    try:
        status = _BY_PHASE[Phase(phase)]
    except ValueError:  # a phase a newer operator added
        return RunStatus.UNKNOWN
    if status.is_terminal():
        return status
    if suspended:
        return RunStatus.TERMINATING
    if status is RunStatus.RUNNING and not training_started:
        return RunStatus.STARTING
    return status
