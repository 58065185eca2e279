"""The training objective: next-token cross-entropy summed over loss tokens, computed in chunks.

The caller divides by the number of loss tokens in the whole optimizer step (all
ranks, all micro-batches), so every loss token weighs the same whatever the world
size or accumulation: a two-rank run computes the single-rank run's gradient.

The logits are never materialised for the whole sequence: vocabulary × context in fp32
is the largest tensor of a step (128k × 8k tokens = 4 GiB). Only the loss positions are
projected through lm_head, a chunk of tokens at a time, each chunk under activation
checkpointing: its logits exist while its loss is computed, and again while its
gradient is (the backward pass recomputes them), one chunk at a time.
"""

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from kubetune.api.data_rules import IGNORE_INDEX
from kubetune.api.memory_plan import LOGITS_CHUNK_BYTES  # fp32 logits of one chunk (the memory plan counts them)


def shifted_labels(labels: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """Token t predicts label t+1; the first token of a packed example is never predicted from the one before."""
    targets = labels[:, 1:].clone()
    targets[position_ids[:, 1:] == 0] = IGNORE_INDEX
    return targets


def count_loss_tokens(labels: torch.Tensor, position_ids: torch.Tensor) -> int:
    return int((shifted_labels(labels, position_ids) != IGNORE_INDEX).sum())


def chunk_tokens_for(vocab_size: int) -> int:
    """Tokens per chunk so that a chunk's fp32 logits take LOGITS_CHUNK_BYTES."""
    return max(1, LOGITS_CHUNK_BYTES // (4 * vocab_size))


def summed_token_loss(
    hidden: torch.Tensor, head: torch.nn.Linear, labels: torch.Tensor, position_ids: torch.Tensor,
    chunk_tokens: int | None = None, chunked: bool = True,
) -> torch.Tensor:
    """Cross-entropy summed over the loss tokens of a micro-batch, from the model's final hidden states
    (batch × sequence × hidden) and its output projection, `chunk_tokens` loss positions at a time; with
    `chunked` off (TrainingOptions.chunked_loss), all loss positions at once, their logits kept for backward."""
    targets = shifted_labels(labels, position_ids).reshape(-1)
    states = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    keep = targets != IGNORE_INDEX
    states, targets = states[keep], targets[keep]
    if targets.numel() == 0:
        # A micro-batch without loss tokens (a rank's filler) must still reach lm_head and every layer in
        # the backward pass, with zero gradients: FSDP reduces every parameter's gradient on every rank.
        return head(hidden[:, :1]).float().sum() * 0.0
    if not chunked:
        return _chunk_loss(states, head.weight, head.bias, targets)
    step = chunk_tokens or chunk_tokens_for(head.weight.shape[0])
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), step):
        chunk = (states[start : start + step], head.weight, head.bias, targets[start : start + step])
        if torch.is_grad_enabled():
            total = total + checkpoint(_chunk_loss, *chunk, use_reentrant=False)
        else:
            total = total + _chunk_loss(*chunk)
    return total


def _chunk_loss(states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
    # The logits in the compute dtype (bf16 under FSDP on GPUs), the loss in fp32, as transformers does.
    logits = F.linear(states, weight, bias).float()
    return F.cross_entropy(logits, targets, reduction="sum")
