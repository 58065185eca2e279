"""Truncation and packing: many examples per sequence of context_length, none seeing another.

Each packed sequence carries position_ids that restart at 0 for every example
(padding is a segment of its own). `model_inputs` hands a model built with the trainer's
document attention (kubetune.trainer.attention) the example boundaries read from them, and
no mask at all. Any other attention implementation gets the fallback: the 4D
block-diagonal causal mask Hugging Face models take as-is (transformers'
masking_utils passes a 4D mask through untouched; the eager attention adds it to
the scores and SDPA uses it as attn_mask, so an additive float mask suits both).
"""

import bisect
import random
from collections.abc import Sequence

import torch

from kubetune.trainer.attention import DOCUMENT_ATTENTION, document_bounds

from .formatting import IGNORE_INDEX, TokenizedExample
from .stats import PackingStats, packing_efficiency


def fit_to_context(
    examples: Sequence[TokenizedExample], context_length: int, *, split_long: bool = False
) -> tuple[list[TokenizedExample], int, int]:
    """Cuts examples to context_length; long documents are split into pieces instead when `split_long`.

    Returns the fitted examples, how many were truncated and how many were split.
    """
    fitted: list[TokenizedExample] = []
    truncated = split = 0
    for example in examples:
        if len(example) <= context_length:
            fitted.append(example)
        elif split_long:
            split += 1
            fitted.extend(_pieces(example, context_length))
        else:
            truncated += 1
            fitted.append(
                TokenizedExample(example.origin, example.input_ids[:context_length], example.labels[:context_length])
            )
    return fitted, truncated, split


def _pieces(example: TokenizedExample, context_length: int) -> list[TokenizedExample]:
    pieces = []
    for start in range(0, len(example), context_length):
        labels = example.labels[start : start + context_length]
        pieces.append(
            TokenizedExample(
                example.origin, example.input_ids[start : start + context_length], [IGNORE_INDEX, *labels[1:]]
            )
        )
    return pieces


def pack_examples(lengths: Sequence[int], context_length: int, *, seed: int = 0) -> list[list[int]]:
    """Best-fit decreasing bin packing: lists of example indices whose lengths sum to at most context_length.

    Ties between equal lengths are broken by a seeded shuffle, so the result is deterministic.
    """
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for index in order:
        length = lengths[index]
        slot = bisect.bisect_left(free, (length, -1))
        if slot < len(free):
            room, target = free.pop(slot)
        else:
            room, target = context_length, len(bins)
            bins.append([])
        bins[target].append(index)
        if room - length > 0:
            bisect.insort(free, (room - length, target))
    return bins


class PackedDataset(torch.utils.data.Dataset):
    """Packed sequences of exactly context_length tokens: input_ids, labels and position_ids."""

    def __init__(self, sequences: list[TokenizedExample], position_ids: list[list[int]], context_length: int,
                 pad_token_id: int, stats: PackingStats, example_lengths: list[int]):
        self._ids = [torch.tensor(s.input_ids, dtype=torch.int32) for s in sequences]
        self._labels = [torch.tensor(s.labels, dtype=torch.int32) for s in sequences]
        self._positions = [torch.tensor(p, dtype=torch.int32) for p in position_ids]
        self.context_length = context_length
        self.pad_token_id = pad_token_id
        self.stats = stats
        # Token counts of the examples before truncation, for summaries such as `kubetune validate-data`.
        self.example_lengths = example_lengths

    @classmethod
    def from_examples(cls, examples: Sequence[TokenizedExample], context_length: int, *, pad_token_id: int,
                      seed: int = 0, split_long: bool = False) -> "PackedDataset":
        fitted, truncated, split = fit_to_context(examples, context_length, split_long=split_long)
        bins = pack_examples([len(e) for e in fitted], context_length, seed=seed)
        sequences = [_concatenate([fitted[i] for i in members]) for members in bins]
        positions = [[p for i in members for p in range(len(fitted[i]))] for members in bins]
        real = sum(len(s) for s in sequences)
        stats = PackingStats(
            examples=len(fitted),
            sequences=len(sequences),
            real_tokens=real,
            loss_tokens=sum(s.loss_tokens for s in sequences),
            padding_tokens=len(sequences) * context_length - real,
            truncated_examples=truncated,
            efficiency=packing_efficiency(real, len(sequences), context_length),
            split_documents=split,
        )
        return cls(sequences, positions, context_length, pad_token_id, stats, [len(e) for e in examples])

    @property
    def tokens_per_epoch(self) -> int:
        return self.stats.real_tokens

    def __len__(self) -> int:
        return len(self._ids)

    def real_tokens_of(self, index: int) -> int:
        """Tokens of sequence `index` that are not padding."""
        return len(self._ids[index])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pad = self.context_length - len(self._ids[index])
        return {
            "input_ids": _pad(self._ids[index], pad, self.pad_token_id),
            "labels": _pad(self._labels[index], pad, IGNORE_INDEX),
            # Padding is its own segment (positions from 0), so no real token attends to it.
            "position_ids": torch.cat([self._positions[index].long(), torch.arange(pad)]),
        }


def _concatenate(examples: list[TokenizedExample]) -> TokenizedExample:
    return TokenizedExample(
        examples[0].origin,
        [t for e in examples for t in e.input_ids],
        [t for e in examples for t in e.labels],
    )


def _pad(values: torch.Tensor, count: int, fill: int) -> torch.Tensor:
    return torch.cat([values.long(), torch.full((count,), fill, dtype=torch.long)])


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stacks packed sequences (all context_length long) into a batch."""
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def model_inputs(
    batch: dict[str, torch.Tensor], *, attn_implementation: str | None = None, mask_dtype: torch.dtype = torch.float32
) -> dict:
    """What a Hugging Face causal LM's forward needs for packed sequences (labels are left to the loss).

    `attn_implementation` is the model's (`model.config._attn_implementation`): the trainer's document
    attention gets the example boundaries and no mask; any other gets the dense block-causal mask, for
    which pass the model's compute dtype as `mask_dtype` (e.g. torch.bfloat16): the eager attention adds
    the mask to its scores, and SDPA's fused kernels want a mask of the query's dtype.
    """
    position_ids = batch["position_ids"]
    inputs = {"input_ids": batch["input_ids"], "position_ids": position_ids}
    if attn_implementation == DOCUMENT_ATTENTION:
        return {**inputs, "document_bounds": document_bounds(position_ids)}
    return {**inputs, "attention_mask": block_causal_mask(position_ids, mask_dtype)}


def block_causal_mask(position_ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive mask [B, 1, L, L]: 0 where a token may attend (same segment, not in the future), dtype-min elsewhere."""
    segments = (position_ids == 0).cumsum(dim=-1)
    length = position_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=position_ids.device).tril()
    allowed = (segments[:, :, None] == segments[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype, device=position_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
