"""The trainer's data pipeline: read, validate, tokenize with the chat template, pack.

The training loop uses exactly this interface:
    rules = rules_for(model, task_type, context_length, tokenizer=tokenizer)   # one decision for every side
    config = DataConfig.from_rules(path, rules, ...)
    dataset = build_packed_dataset(config, tokenizer)       # raises DataValidationError
    batch = load_micro_batch(dataset, indices, ...)         # kubetune.trainer.steps: packed rows and their masks
"""

from .formatting import IGNORE_INDEX, TokenizedExample, tokenize_example
from .packing import PackedDataset, block_causal_mask, collate, model_inputs, pack_examples
from .pipeline import DataConfig, build_packed_dataset, load_and_validate
from .records import Example, Message, Origin, RawRecord
from .rules import model_folder, rules_for, tokenizer_accepts_system_role
from .stats import LengthSummary, PackingStats, summarize_lengths
from .validation import MAX_REPORTED, DataProblem, DataValidationError

__all__ = [
    "IGNORE_INDEX",
    "MAX_REPORTED",
    "DataConfig",
    "DataProblem",
    "DataValidationError",
    "Example",
    "LengthSummary",
    "Message",
    "Origin",
    "PackedDataset",
    "PackingStats",
    "RawRecord",
    "TokenizedExample",
    "block_causal_mask",
    "build_packed_dataset",
    "collate",
    "load_and_validate",
    "model_inputs",
    "pack_examples",
    "model_folder",
    "rules_for",
    "summarize_lengths",
    "tokenize_example",
    "tokenizer_accepts_system_role",
]
