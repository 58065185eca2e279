"""Numbers about a dataset: token-length summaries and packing statistics."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PackingStats:
    examples: int  # examples packed (after a long CPT document is split, each piece counts)
    sequences: int
    real_tokens: int  # tokens that are not padding
    loss_tokens: int  # tokens that carry a label
    padding_tokens: int
    truncated_examples: int  # examples cut at the context length (chat and instruction)
    efficiency: float  # real_tokens / (sequences × context_length)
    split_documents: int = 0  # continued-pretraining documents longer than the context, split into pieces


@dataclass(frozen=True)
class LengthSummary:
    count: int
    min: int
    mean: float
    max: int
    p95: int


def summarize_lengths(lengths: list[int]) -> LengthSummary:
    """Min, mean, max and the 95th percentile (nearest rank) of token counts."""
    if not lengths:
        return LengthSummary(0, 0, 0.0, 0, 0)
    ordered = sorted(lengths)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return LengthSummary(len(ordered), ordered[0], sum(ordered) / len(ordered), ordered[-1], ordered[rank - 1])


def packing_efficiency(real_tokens: int, sequences: int, context_length: int) -> float:
    capacity = sequences * context_length
    return real_tokens / capacity if capacity else 0.0
