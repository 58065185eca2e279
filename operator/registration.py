"""The registration step: the finished model into MLflow's registry, with transient and permanent faults
apart, called off the reconcile workers (Registrar) so that a hung MLflow delays only the runs waiting on it."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from kubetune.api.redaction import redact
from kubetune.operator.access_rules import register_to_allowed
from kubetune.operator.reconcile import RegistrationRequest

# MLflow error codes that retrying cannot fix.
_PERMANENT_CODES = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_DOES_NOT_EXIST",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "BAD_REQUEST",
        "INVALID_STATE",
    }
)


@dataclass(frozen=True)
class RegistrationOutcome:
    name: str | None = None
    version: str | None = None
    transient_error: str | None = None
    permanent_error: str | None = None


def is_permanent(error: BaseException) -> bool:
    """MLflow said no (bad name, missing run, no permission); anything else (down, 5xx, timeouts) is worth a retry."""
    if getattr(error, "permanent", False):  # kubetune.registry.ProvenanceError: not the run's own model
        return True
    cause = error.__cause__ or error
    return getattr(cause, "error_code", None) in _PERMANENT_CODES


def register(request: RegistrationRequest) -> RegistrationOutcome:
    from kubetune.registry import register_model  # mlflow is imported only when a run registers

    if request.allowed_names is not None and not register_to_allowed(request.name, request.allowed_names):
        allowed = ", ".join(request.allowed_names) or "nothing"  # decide() refuses such a run before it trains
        return RegistrationOutcome(permanent_error=f"not registering {request.name}: its namespace may use only {allowed}")
    try:
        version = register_model(request.tracking_uri, request.name, request.source, request.run_id, request.tags)
    except Exception as error:  # noqa: BLE001 - every MLflow/HTTP fault is classified, none crashes the operator
        text = redact(f"{type(error).__name__}: {error}").splitlines()[0][:300]  # masked whole, then cut
        if is_permanent(error):
            return RegistrationOutcome(permanent_error=text)
        return RegistrationOutcome(transient_error=text)
    return RegistrationOutcome(name=version.name, version=str(version.version))


RunKey = tuple[str, str]  # (namespace, name)


@dataclass
class _Call:
    request: RegistrationRequest
    future: Future
    started: float


class Registrar:
    """Registration calls on a small pool of their own, one in flight per run: a hung MLflow holds neither a
    reconcile worker nor the run's lock (a cancel or any other run goes on). `outcome` starts the call and
    answers None while it runs; the finished call wakes its run, whose next reconcile takes the outcome.
    A call running longer than `timeout_s` is reported as MLflow being unavailable (retried with backoff)
    until it ends."""

    def __init__(self, wake: Callable[[RunKey], None], timeout_s: float, workers: int = 4):
        self._wake = wake
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registration")
        self._calls: dict[RunKey, _Call] = {}
        self._guard = threading.Lock()

    def outcome(self, run: RunKey, request: RegistrationRequest) -> RegistrationOutcome | None:
        with self._guard:
            call = self._calls.get(run)
            if call is None or call.request != request:
                self._start(run, request)
                return None
            if call.future.done():
                del self._calls[run]
                return call.future.result()
            if time.monotonic() - call.started > self._timeout_s:
                return RegistrationOutcome(transient_error=f"MLflow did not answer within {self._timeout_s:g} s")
            return None

    def _start(self, run: RunKey, request: RegistrationRequest) -> None:
        future = self._pool.submit(register, request)
        self._calls[run] = _Call(request, future, time.monotonic())
        # On a thread of its own: a call that is already done runs its callback right here, under the
        # caller's locks, which the woken reconcile needs.
        future.add_done_callback(lambda _: threading.Thread(target=self._wake, args=(run,), daemon=True).start())
