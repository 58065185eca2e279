"""Pure builders for what the SDK sends: the spec from create()'s arguments, the run's name and manifest."""

import re
import secrets
import string
from typing import Any

from pydantic.alias_generators import to_snake

from kubetune.api import API_VERSION, KIND
from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.spec import Compute, FineTuneRunSpec

# Child objects append suffixes (e.g. "-train", "-validate", pod indexes) and must stay
# within 63 characters, so generated run names stay well short of that.
MAX_GENERATED_NAME = 40
NAME_TOKEN_LENGTH = 6
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
CANCEL_PATCH = {"spec": {"suspend": True}}


def model_short_name(model: str) -> str:
    """`meta-llama/Llama-3.2-3B-Instruct` → `llama-3-2-3b-instruct`; a path's last folder for bring-your-own models."""
    last = model.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-") or "run"


def generate_run_name(model: str, token: str | None = None) -> str:
    """A Databricks-like run name `<model-short>-<random>`, a valid DNS label of at most MAX_GENERATED_NAME."""
    token = token or "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(NAME_TOKEN_LENGTH))
    stem = model_short_name(model)[: MAX_GENERATED_NAME - len(token) - 1].rstrip("-")
    if not stem[:1].isalpha():
        stem = f"run-{stem}".rstrip("-")[: MAX_GENERATED_NAME - len(token) - 1].rstrip("-")
    return f"{stem}-{token}"


def spec_from_arguments(
    *,
    model: str,
    train_data_path: str,
    register_to: str,
    experiment_path: str | None = None,
    task_type: str | None = None,
    eval_data_path: str | None = None,
    eval_prompts: list[str] | None = None,
    custom_weights_path: str | None = None,
    training_duration: str | None = None,
    learning_rate: float | str | None = None,
    context_length: int | None = None,
    validate_inputs: bool | None = True,
    compute: Compute | dict[str, Any] | None = None,
) -> FineTuneRunSpec:
    """The validated spec for `create()`'s arguments; every problem is reported at once, by argument name."""
    arguments = {
        "model": model,
        "train_data_path": train_data_path,
        "register_to": register_to,
        "experiment_path": experiment_path or None,  # Databricks' default is ''
        "task_type": task_type or None,
        "eval_data_path": eval_data_path,
        "eval_prompts": list(eval_prompts) if isinstance(eval_prompts, (list, tuple)) else eval_prompts,
        "custom_weights_path": custom_weights_path,
        "training_duration": training_duration,
        "learning_rate": learning_rate,
        "context_length": context_length,
        "validate_inputs": validate_inputs,
        "compute": compute.model_dump(exclude_none=True) if isinstance(compute, Compute) else compute,
    }
    try:
        return FineTuneRunSpec.parse({k: v for k, v in arguments.items() if v is not None})
    except SpecError as error:
        raise SpecError([_as_argument(p) for p in error.problems]) from None


def _as_argument(problem: SpecProblem) -> SpecProblem:
    """`spec.compute.gpusPerNode` → `compute.gpus_per_node`: the name the Python caller used."""
    path = problem.field.removeprefix("spec.").removeprefix("spec")
    field = ".".join(to_snake(part) for part in path.split(".") if part) or "arguments"
    return SpecProblem(field, problem.rule, problem.value)


def build_run_manifest(
    name: str, spec: FineTuneRunSpec, namespace: str | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """The FineTuneRun object the SDK creates."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec.to_manifest_spec()}
