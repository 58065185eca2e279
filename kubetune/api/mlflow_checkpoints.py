"""Checkpoints seen from MLflow: what the trainer lists under its MLflow run, and how a
customWeightsPath of the form `runs:/RUN_ID[/checkpoints[/ep{E}-ba{B}]]` finds the checkpoint again.

The trainer lists every complete checkpoint under its MLflow run's artifacts as
`checkpoints/<name>/checkpoint.json` (a CheckpointRef: name, step, epoch, where it is). The weights
stay on the run's checkpoint volume: copying gigabytes per checkpoint into the artifact store would cost
more than the checkpoint itself, and the folder is what a later run reads.

A reference is resolved where the checkpoint volume is mounted (the trainer, the validation step, local
mode): the MLflow run's `kubetune.run` tag names the FineTuneRun that made it, and the checkpoint is that
run's folder under the checkpoint root. A run reads checkpoints of its own namespace only: the volume is
the namespace's, and another team's weights are not its author's to read.
"""

from kubetune.api.locations import Location
from kubetune.api.mlflow_tags import RUN_TAG
from kubetune.api.progress import CheckpointRef

CHECKPOINTS_ARTIFACT_FOLDER = "checkpoints"
CHECKPOINT_ARTIFACT_FILE = "checkpoint.json"
# MLflow's error codes for a run id that names no run (a user error, unlike an unreachable server).
_NO_SUCH_RUN_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


class CheckpointReferenceError(ValueError):
    """A runs:/ reference that names no checkpoint this run may read: retrying cannot help."""


class MlflowUnavailableError(ConnectionError):
    """The MLflow server did not answer a runs:/ reference: transient, unlike a reference to no checkpoint."""


def checkpoint_artifact_path(name: str) -> str:
    """Where a checkpoint's reference lives under its MLflow run's artifacts."""
    return f"{CHECKPOINTS_ARTIFACT_FOLDER}/{name}/{CHECKPOINT_ARTIFACT_FILE}"


def checkpoint_mlflow_uri(run_id: str, name: str) -> str:
    """The checkpoint as a customWeightsPath a later run can use."""
    return f"runs:/{run_id}/{CHECKPOINTS_ARTIFACT_FOLDER}/{name}"


def log_checkpoint_reference(client, run_id: str, checkpoint: CheckpointRef) -> None:
    """List one complete checkpoint under the MLflow run (written again after a restart: the same content)."""
    client.log_dict(run_id, checkpoint.model_dump(mode="json", by_alias=True, exclude_none=True),
                    checkpoint_artifact_path(checkpoint.name))


def referenced_run(location: Location, tracking_uri: str | None, namespace: str) -> str:
    """The name of the FineTuneRun, in `namespace`, that made the MLflow run a runs:/ reference names; the
    caller reads the checkpoint from that run's folder (kubetune.api.checkpoints).

    Raises CheckpointReferenceError for what retrying cannot fix (no such MLflow run, not a Kubetune run,
    another namespace's run, no tracking server configured); MlflowUnavailableError, which the trainer treats
    as transient, when the server does not answer."""
    value = location.uri
    if not tracking_uri:
        raise CheckpointReferenceError(
            f"spec.customWeightsPath: {value!r} names an MLflow run, but no MLflow tracking server is configured "
            "(the operator configuration's mlflow.trackingUri, or MLFLOW_TRACKING_URI in local mode)"
        )
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        run = MlflowClient(tracking_uri).get_run(location.run_id)
    except MlflowException as error:
        if error.error_code in _NO_SUCH_RUN_CODES:
            raise CheckpointReferenceError(
                f"spec.customWeightsPath: {value!r}: the MLflow server has no run {location.run_id}"
            ) from None
        raise MlflowUnavailableError(
            f"spec.customWeightsPath: {value!r}: the MLflow server at {tracking_uri} did not answer: {str(error).splitlines()[0]}"
        ) from error
    made_by = run.data.tags.get(RUN_TAG, "")
    run_namespace, _, run_name = made_by.partition("/")
    if not run_name:
        raise CheckpointReferenceError(
            f"spec.customWeightsPath: {value!r}: MLflow run {location.run_id} was not made by a Kubetune run "
            f"(it has no {RUN_TAG} tag), so it lists no checkpoints"
        )
    if run_namespace != namespace:
        raise CheckpointReferenceError(
            f"spec.customWeightsPath: {value!r}: MLflow run {location.run_id} belongs to the run {made_by}; "
            f"a run in namespace {namespace} may start only from checkpoints of its own namespace"
        )
    return run_name
