"""The data pipeline as the training loop sees it: a typed config in, a packed dataset out."""

from dataclasses import dataclass
from pathlib import Path

from kubetune.api.data_rules import DataRules
from kubetune.api.locations import PVC_MOUNT_ROOT, parse_data_path
from kubetune.api.spec import TaskType

from .formatting import tokenize_examples
from .packing import PackedDataset
from .records import Example
from .sources import read_records
from .validation import DataProblem, DataValidationError, validate_records


@dataclass(frozen=True)
class DataConfig:
    path: str  # any trainDataPath form (see kubetune.api.locations)
    task_type: TaskType
    context_length: int
    pvc_mount_root: Path = Path(PVC_MOUNT_ROOT)  # where the operator mounts claim CLAIM: ROOT/CLAIM
    dataset_root: Path | None = None  # an offline mirror of the Hugging Face hub: ROOT/org/name
    accepts_system_role: bool = True  # decided by kubetune.trainer.data.rules_for (Mistral: False)
    hf_cache_dir: Path | None = None  # where `datasets` caches what it loads; its own default when None

    @classmethod
    def from_rules(cls, path: str, rules: DataRules, **where: Path | None) -> "DataConfig":
        """`where`: pvc_mount_root, dataset_root, hf_cache_dir."""
        located = {key: value for key, value in where.items() if value is not None}
        return cls(
            path=path,
            task_type=TaskType(rules.task_type),
            context_length=rules.context_length,
            accepts_system_role=rules.accepts_system_role,
            **located,  # type: ignore[arg-type]
        )


def load_and_validate(config: DataConfig) -> list[Example]:
    """Reads and checks every record; raises DataValidationError listing every problem (file, line, rule)."""
    try:
        location = parse_data_path(config.path)
    except ValueError as err:
        raise DataValidationError([DataProblem(config.path, None, str(err))]) from err
    records = read_records(
        location,
        config.task_type,
        pvc_mount_root=config.pvc_mount_root,
        dataset_root=config.dataset_root,
        hf_cache_dir=config.hf_cache_dir,
    )
    return validate_records(
        records, config.task_type, accepts_system_role=config.accepts_system_role, source=config.path
    )


def build_packed_dataset(config: DataConfig, tokenizer, *, seed: int = 0) -> PackedDataset:
    """Validated, tokenized (labels on what the model should learn) and packed to config.context_length.

    The order is deterministic for a given seed; the training loop shuffles with its own sampler.
    """
    examples = load_and_validate(config)
    tokenized = tokenize_examples(examples, tokenizer, config.task_type)
    return PackedDataset.from_examples(
        tokenized,
        config.context_length,
        pad_token_id=pad_token_id(tokenizer),
        seed=seed,
        split_long=config.task_type is TaskType.CONTINUED_PRETRAIN,
    )


def pad_token_id(tokenizer) -> int:
    """Padding never carries a label or receives attention, so any id works; prefer the tokenizer's own."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return candidate
    return 0
