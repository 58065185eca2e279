"""Registering a finished run's model in the MLflow model registry, idempotently.

Shared by the operator's registration step and local mode, so it imports only
mlflow's client (mlflow-skinny is enough) and never torch. A retried registration
finds the version it already created (same run tag and source) and returns it.

Only a model the run itself produced is registered: the source must be a logged model (`models:/<model_id>`,
what the trainer logs) whose source run is an MLflow run that carries the FineTuneRun's tag, or lie among
that run's artifacts. The trainer's report, which names both, is written by an identity any container of the
training pod holds, so it is never trusted alone: a forged report naming another team's MLflow run, logged
model or model files is refused (ProvenanceError), not registered with the operator's credentials.
"""

from dataclasses import dataclass

from kubetune.api.mlflow_tags import RUN_TAG, RUN_UID_TAG, quoted

LOGGED_MODEL_SCHEME = "models:/"


class RegistrationError(RuntimeError):
    """MLflow refused or could not be reached; the caller decides whether to retry."""


class ProvenanceError(RegistrationError):
    """The model to register is not the run's own: a retry cannot change that."""

    permanent = True


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str


def register_model(
    tracking_uri: str | None, name: str, source: str, run_id: str | None, tags: dict[str, str]
) -> RegisteredVersion:
    """Register `source` (the run's exported model) as a new version of `name`, or return the one already there.

    A version counts as already there when its source is `source` and it carries the
    same `kubetune.run_uid` (or, without a uid, the same `kubetune.run`) tag.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        verify_provenance(client, source, run_id, tags)
        _ensure_registered_model(client, name)
        existing = find_version(client, name, source, tags)
        if existing is not None:
            return existing
        # MLflow resolves a models:/m-... source through the process-wide tracking URI, not the client's: without
        # this, a store other than the default (local mode's SQLite file) answers "logged model not found".
        import mlflow

        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(tracking_uri)
        try:
            version = client.create_model_version(
                name=name, source=source, run_id=run_id, tags=tags, model_id=logged_model_id(source)
            )
        finally:
            mlflow.set_tracking_uri(previous)
        return RegisteredVersion(name, str(version.version))
    except MlflowException as error:
        raise RegistrationError(f"registering {name!r} from {source!r} failed: {error}") from error


def logged_model_id(source: str) -> str | None:
    """The id in `models:/<model_id>` (a logged model's URI), else None (registered-model URIs included)."""
    model_id = source.removeprefix(LOGGED_MODEL_SCHEME) if source.startswith(LOGGED_MODEL_SCHEME) else ""
    return model_id if model_id.startswith("m-") and "/" not in model_id else None


def verify_provenance(client, source: str, run_id: str | None, tags: dict[str, str]) -> None:
    """`source` is a logged model of MLflow run `run_id` (its source run, in the run's experiment) or lies
    among that run's artifacts, and the run carries the FineTuneRun's identity tag (the trainer sets it when
    it creates the run: kubetune.api.mlflow_tags)."""
    from mlflow.exceptions import MlflowException

    identity = RUN_UID_TAG if tags.get(RUN_UID_TAG) else RUN_TAG
    if not run_id:
        raise ProvenanceError(f"cannot register {source!r}: the trainer's report names no MLflow run")
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ProvenanceError(f"cannot register {source!r}: MLflow run {run_id} does not exist") from None
        raise
    if run.data.tags.get(identity) != tags.get(identity):
        raise ProvenanceError(
            f"cannot register {source!r}: MLflow run {run_id} was not created by this FineTuneRun "
            f"(its {identity} tag is {run.data.tags.get(identity)!r}, expected {tags.get(identity)!r})"
        )
    model_id = logged_model_id(source)
    if model_id is not None:
        _verify_logged_model(client, source, model_id, run)
        return
    artifacts = run.info.artifact_uri.rstrip("/") + "/"
    if not source.startswith(artifacts):
        raise ProvenanceError(f"cannot register {source!r}: it is not among the artifacts of MLflow run {run_id} ({artifacts})")


def _verify_logged_model(client, source: str, model_id: str, run) -> None:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_logged_model(model_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ProvenanceError(f"cannot register {source!r}: no such logged model") from None
        raise
    if model.source_run_id != run.info.run_id or model.experiment_id != run.info.experiment_id:
        raise ProvenanceError(
            f"cannot register {source!r}: it was logged by MLflow run {model.source_run_id}, not by {run.info.run_id}"
        )


def find_version(client, name: str, source: str, tags: dict[str, str]) -> RegisteredVersion | None:
    identity = RUN_UID_TAG if tags.get(RUN_UID_TAG) else RUN_TAG
    for version in client.search_model_versions(f"name = '{quoted(name)}'"):
        if version.source == source and version.tags.get(identity) == tags.get(identity):
            return RegisteredVersion(name, str(version.version))
    return None


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
