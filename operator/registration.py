"""The registration step: the finished model into MLflow's registry, with transient and permanent faults apart."""

from dataclasses import dataclass

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
    cause = error.__cause__ or error
    return getattr(cause, "error_code", None) in _PERMANENT_CODES


def register(request: RegistrationRequest) -> RegistrationOutcome:
    from kubetune.registry import register_model  # mlflow is imported only when a run registers

    try:
        version = register_model(request.tracking_uri, request.name, request.source, request.run_id, request.tags)
    except Exception as error:  # noqa: BLE001 - every MLflow/HTTP fault is classified, none crashes the operator
        text = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        if is_permanent(error):
            return RegistrationOutcome(permanent_error=text)
        return RegistrationOutcome(transient_error=text)
    return RegistrationOutcome(name=version.name, version=str(version.version))
