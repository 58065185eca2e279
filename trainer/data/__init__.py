"""The trainer's data pipeline: read, validate, tokenize with the chat template, pack.

The training loop uses exactly this interface:
    config = DataConfig(path, task_type, context_length, ...)
    dataset = build_packed_dataset(config, tokenizer)       # raises DataValidationError
    loader = DataLoader(dataset, batch_size, sampler=..., collate_fn=collate)
    outputs = model(**model_inputs(batch), ...)             # labels: batch["labels"]
"""

from .formatting import IGNORE_INDEX, TokenizedExample, tokenize_example, tokenizer_accepts_system_role
from .packing import PackedDataset, block_causal_mask, collate, model_inputs, pack_examples
from .pipeline import DataConfig, build_packed_dataset, load_and_validate
from .records import Example, Message, Origin, RawRecord
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
    "summarize_lengths",
    "tokenize_example",
    "tokenizer_accepts_system_role",
]
