"""The data rules of a run, decided in one place for the validation step, `kubetune validate-data`,
local mode and the trainer, so validation and training can never disagree.

A run's rules: its task type, the context length examples are truncated and packed to, and
whether a `system` message is accepted. The supported-models table is the first word on a
model; a model folder's config.json and its chat template (the caller probes it, see
kubetune.trainer.data.rules) speak for models outside the table, and can only narrow what the
table allows.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from kubetune.api import supported_models

# The label of a token that takes no loss (torch's cross_entropy ignore_index): prompts, padding, filler.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class DataRules:
    task_type: str  # a kubetune.api.spec.TaskType value
    context_length: int
    accepts_system_role: bool = True


def folder_max_context(folder: Path | None) -> int | None:
    """max_position_embeddings from a Hugging Face model folder's config.json, when there is one."""
    config = Path(folder) / "config.json" if folder else None
    if config is None or not config.is_file():
        return None
    return json.loads(config.read_text()).get("max_position_embeddings")


def model_max_context(model: str, folder_max: int | None = None) -> int | None:
    """The longest context a model takes: the table's for a supported model, else its folder's config."""
    info = supported_models.lookup(model)
    return info.max_context_length if info else folder_max


def resolve_context_length(context_length: int | None, model: str, folder_max: int | None = None) -> int:
    """contextLength, else min(8192, the model's maximum); longer than the maximum is a ValueError."""
    maximum = model_max_context(model, folder_max)
    length = context_length or supported_models.capped_context_length(maximum)
    if length <= 0:
        raise ValueError(f"contextLength must be positive (got {length})")
    if maximum and length > maximum:
        raise ValueError(f"contextLength {length} is larger than {model}'s maximum {maximum}")
    return length


def accepts_system_role(model: str, template_accepts: bool | None = None) -> bool:
    """The table's answer for a supported model, narrowed by what the chat template renders (None: unknown)."""
    info = supported_models.lookup(model)
    table = info.accepts_system_role if info else True
    return table and template_accepts is not False


def data_rules(
    model: str,
    task_type: str,
    context_length: int | None = None,
    *,
    folder_max: int | None = None,
    template_accepts_system: bool | None = None,
) -> DataRules:
    return DataRules(
        task_type=str(getattr(task_type, "value", task_type)),
        context_length=resolve_context_length(context_length, model, folder_max),
        accepts_system_role=accepts_system_role(model, template_accepts_system),
    )
