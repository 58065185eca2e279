"""The training objective: next-token cross-entropy summed over loss tokens.

The caller divides by the number of loss tokens in the whole optimizer step (all
ranks, all micro-batches), so every loss token weighs the same whatever the world
size or accumulation: a two-rank run computes the single-rank run's gradient.
"""

import torch
import torch.nn.functional as F

from kubetune.api.data_rules import IGNORE_INDEX


def shifted_labels(labels: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """Token t predicts label t+1; the first token of a packed example is never predicted from the one before."""
    targets = labels[:, 1:].clone()
    targets[position_ids[:, 1:] == 0] = IGNORE_INDEX
    return targets


def summed_token_loss(logits: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    targets = shifted_labels(labels, position_ids)
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )


def count_loss_tokens(labels: torch.Tensor, position_ids: torch.Tensor) -> int:
    return int((shifted_labels(labels, position_ids) != IGNORE_INDEX).sum())
