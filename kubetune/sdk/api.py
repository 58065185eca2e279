"""create/get/list/cancel/delete/get_events/get_checkpoints/get_models, with Databricks' names and defaults.

Each function accepts a run object or a run's name wherever Databricks' does. A
run object carries its namespace; a name is looked up in the configured namespace.
"""

import builtins
import time
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.identifiers import DNS_LABEL
from kubetune.api.spec import Compute, FineTuneRunSpec
from kubetune.api.supported_models import SUPPORTED_MODELS
from kubetune.sdk import build
from kubetune.sdk.client import RunsClient, get_client
from kubetune.sdk.databricks_types import (
    EVENT_COLUMNS,
    MODEL_COLUMNS,
    RUN_COLUMNS,
    CheckpointPath,
    ObjectList,
    TrainingModelConstants,
)
from kubetune.sdk.errors import ClusterUnavailableError, RunAlreadyExistsError
from kubetune.sdk.events import TrainingEvent, unseen
from kubetune.sdk.filters import DEFAULT_LIMIT, filter_runs
from kubetune.sdk.run import (
    CREATED_BY_ANNOTATION,
    RunRef,
    TrainingRun,
    cancel_run,
    fetch_run,
    resolve_run,
    run_checkpoints,
    run_events,
    run_name,
)

NAME_RULE = "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63"
GENERATED_NAME_ATTEMPTS = 3
FOLLOW_POLL_SECONDS = 2.0
FOLLOW_RETRY_SECONDS = 120.0


def create(
    model: str,
    train_data_path: str,
    register_to: str,
    *,
    experiment_path: str | None = "",
    task_type: str | None = "CHAT_COMPLETION",
    eval_data_path: str | None = None,
    eval_prompts: list[str] | None = None,
    custom_weights_path: str | None = None,
    training_duration: str | None = None,
    learning_rate: float | str | None = None,
    context_length: int | None = None,
    validate_inputs: bool | None = True,
    data_prep_cluster_id: str | None = None,
    name: str | None = None,
    compute: Compute | dict[str, Any] | None = None,
) -> TrainingRun:
    """Create a fine-tuning run (a FineTuneRun in the configured namespace) and return it.

    `custom_weights_path` may be a checkpoint path or an earlier run's name. `name`
    (default `<model>-<random>`) and `compute` (node pool and size) are Kubetune's.
    Raises SpecError, naming each bad argument, before anything is sent.
    """
    if data_prep_cluster_id is not None:
        warnings.warn("data_prep_cluster_id is ignored: Kubetune reads Delta tables without a Spark cluster", stacklevel=2)
    spec = build.spec_from_arguments(
        model=model, train_data_path=train_data_path, register_to=register_to, experiment_path=experiment_path,
        task_type=task_type, eval_data_path=eval_data_path, eval_prompts=eval_prompts,
        custom_weights_path=custom_weights_path, training_duration=training_duration, learning_rate=learning_rate,
        context_length=context_length, validate_inputs=validate_inputs, compute=compute,
    )
    return submit(spec, name=name)


def submit(
    spec: FineTuneRunSpec,
    name: str | None = None,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> TrainingRun:
    """Create a FineTuneRun from a validated spec (what create() and `kubetune create -f` share).

    Without a name, one is generated (`<model>-<random>`) and regenerated if it is taken. The
    kubetune.io/created-by annotation records the user the API server authenticated (Databricks' created_by).
    """
    if name is not None and not (DNS_LABEL.match(name) and len(name) <= 63):
        raise SpecError([SpecProblem("name", NAME_RULE, name)])
    client = get_client().in_namespace(namespace)
    creator = client.username()
    if creator:
        annotations = {CREATED_BY_ANNOTATION: creator, **(annotations or {})}
    attempts = 1 if name else GENERATED_NAME_ATTEMPTS
    for attempt in range(1, attempts + 1):
        body = build.build_run_manifest(name or build.generate_run_name(spec.model), spec, client.namespace, annotations)
        if labels:
            body["metadata"]["labels"] = dict(labels)
        try:
            return TrainingRun.from_resource(client.create(body))
        except RunAlreadyExistsError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def get(training_run: RunRef) -> TrainingRun:
    """The run as it is now; RunNotFoundError names the run and namespace when it does not exist."""
    return fetch_run(training_run)


def list(  # noqa: A001 - the name Databricks' SDK uses
    training_runs: Iterable[RunRef] | None = None,
    experiment_id: str | None = None,
    *,
    statuses: Iterable[str] | None = None,
    user_emails: Iterable[str] | None = None,
    before: str | datetime | None = None,
    after: str | datetime | None = None,
    include_details: bool = True,
    limit: int | None = DEFAULT_LIMIT,
    finetuning_runs: Iterable[RunRef] | None = None,
) -> ObjectList:
    """Runs in the configured namespace, newest first, filtered like Databricks' list().

    `finetuning_runs` is another name for `training_runs` (the one Databricks' run-management docs use).
    `include_details` is accepted for compatibility; runs always carry their details and events.
    """
    if training_runs and finetuning_runs:
        raise TypeError("list: pass training_runs or finetuning_runs, not both (they are the same filter)")
    chosen = training_runs or finetuning_runs
    names = [run_name(r) for r in chosen] if chosen else None
    runs = filter_runs(
        get_client().list(), names=names, experiment_id=experiment_id, statuses=statuses,
        user_emails=user_emails, before=before, after=after, limit=limit,
    )
    return ObjectList(runs, RUN_COLUMNS)


def cancel(runs: RunRef | Iterable[RunRef] | None = None, experiment_id: str | None = None) -> int:
    """Stop runs (spec.suspend: true: the operator stops their pods and keeps their checkpoints).

    Returns how many runs were cancelled; runs that had already ended or were being cancelled are not counted.
    """
    if runs is None and experiment_id is None:
        raise ValueError("cancel: pass runs (a run, a name, or a list of them) or experiment_id")
    cancelled = 0
    for name, client in _targets(runs, experiment_id):
        if cancel_run(name, client):
            cancelled += 1
    return cancelled


def delete(runs: RunRef | Iterable[RunRef] | None = None, experiment_id: str | None = None) -> int:
    """Delete runs and everything they own (pods, services); returns how many were deleted."""
    if runs is None and experiment_id is None:
        raise ValueError("delete: pass runs (a run, a name, or a list of them) or experiment_id")
    deleted = 0
    for name, client in _targets(runs, experiment_id):
        client.delete(name)
        deleted += 1
    return deleted


def get_events(
    training_run: RunRef, follow: bool = False, *, poll_seconds: float = FOLLOW_POLL_SECONDS
) -> ObjectList | Iterator[TrainingEvent]:
    """The run's events, oldest first. With follow=True, a generator that yields each event as it
    happens (starting with the history) and ends when the run completes, fails or is stopped."""
    if not follow:
        return ObjectList(run_events(training_run), EVENT_COLUMNS)
    return _follow_events(training_run, poll_seconds)


def get_checkpoints(training_run: RunRef) -> builtins.list[CheckpointPath]:
    """The run's complete checkpoints, oldest first, as path strings (Databricks' type) that also carry
    `.name` (`ep{E}-ba{B}`), `.step`, `.epoch` and `.created_at`."""
    return run_checkpoints(training_run)


def get_models() -> ObjectList:
    """The models runs can fine-tune (the supported-models table), with each one's longest context."""
    return ObjectList((TrainingModelConstants.from_model_info(m) for m in SUPPORTED_MODELS.values()), MODEL_COLUMNS)


def follow(
    training_run: RunRef, poll_seconds: float = FOLLOW_POLL_SECONDS, retry_seconds: float = FOLLOW_RETRY_SECONDS
) -> Iterator[TrainingRun]:
    """The run each time it changes, until it has ended (the last one yielded is the final state).

    Runs take hours: an API server that is briefly unreachable is retried for up to `retry_seconds`.
    """
    name, client = resolve_run(training_run)
    seen_version = None
    failing_since = None
    while True:
        try:
            resource = client.get(name)
        except ClusterUnavailableError:
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since >= retry_seconds:
                raise
            time.sleep(poll_seconds)
            continue
        failing_since = None
        version = (resource.get("metadata") or {}).get("resourceVersion")
        run = TrainingRun.from_resource(resource)
        if version != seen_version:
            seen_version = version
            yield run
        if run.status.is_terminal():
            return
        time.sleep(poll_seconds)


def _follow_events(training_run: RunRef, poll_seconds: float) -> Iterator[TrainingEvent]:
    seen: set = set()
    for run in follow(training_run, poll_seconds):
        yield from unseen(run.events, seen)


def _targets(runs: RunRef | Iterable[RunRef] | None, experiment_id: str | None) -> builtins.list[tuple[str, RunsClient]]:
    chosen = [] if runs is None else ([runs] if isinstance(runs, (str, TrainingRun)) else builtins.list(runs))
    if experiment_id is not None:
        chosen += filter_runs(get_client().list(), experiment_id=experiment_id, limit=None)
    return [resolve_run(r) for r in chosen]
