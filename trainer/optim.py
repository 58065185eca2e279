"""AdamW, the warm-up + cosine-decay learning-rate schedule, and the step plan from `trainingDuration`."""

import math
from dataclasses import dataclass

import torch

from kubetune.api.duration import TrainingDuration
from kubetune.api.trainer_config import TrainingOptions


@dataclass(frozen=True)
class BatchShape:
    """How one optimizer step is split: the global batch over ranks and micro-batches (gradient accumulation)."""

    global_batch_size: int  # sequences per optimizer step, all ranks together
    micro_batch_size: int  # sequences per forward pass on one rank
    world_size: int

    @property
    def sequences_per_rank(self) -> int:
        return math.ceil(self.global_batch_size / self.world_size)

    @property
    def accumulation_steps(self) -> int:
        return math.ceil(self.sequences_per_rank / self.micro_batch_size)

    @classmethod
    def fit(cls, options: TrainingOptions, world_size: int, sequences_per_epoch: int) -> "BatchShape":
        """The configured batch, shrunk to the data when an epoch holds fewer sequences than one batch."""
        global_batch = max(1, min(options.global_batch_size, sequences_per_epoch))
        micro = max(1, min(options.micro_batch_size, math.ceil(global_batch / world_size)))
        return cls(global_batch, micro, world_size)


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps the run takes, derived once from the duration and the packed data."""

    total_steps: int
    steps_per_epoch: int
    total_epochs: int
    tokens_per_epoch: int

    @property
    def tokens_total(self) -> int:
        """Tokens the plan will show the model (whole epochs scaled by the share of steps taken)."""
        return round(self.tokens_per_epoch * self.total_steps / self.steps_per_epoch)

    def epoch_of(self, step: int) -> int:
        """The 1-based epoch that optimizer step `step` (1-based) belongs to."""
        return (step - 1) // self.steps_per_epoch + 1


def plan_steps(duration: TrainingDuration, sequences_per_epoch: int, tokens_per_epoch: int, global_batch: int) -> StepPlan:
    """Epochs, tokens or batches → optimizer steps. A partial last batch of an epoch still counts as a step."""
    if sequences_per_epoch < 1:
        raise ValueError("the training data packs into no sequences")
    steps_per_epoch = math.ceil(sequences_per_epoch / global_batch)
    if duration.unit == "ep":
        total = duration.value * steps_per_epoch
    elif duration.unit == "ba":
        total = duration.value
    else:  # tokens: as many steps as it takes to see that many (real) tokens
        tokens_per_step = max(1.0, tokens_per_epoch / steps_per_epoch)
        total = math.ceil(duration.value / tokens_per_step)
    total = max(1, total)
    return StepPlan(total, steps_per_epoch, math.ceil(total / steps_per_epoch), tokens_per_epoch)


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    return min(total_steps - 1, round(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0


def lr_multiplier(step: int, total_steps: int, warmup: int, min_ratio: float) -> float:
    """The LR factor for optimizer step `step` (0-based): linear warm-up to 1, then cosine down to min_ratio."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    decay_steps = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# Device types with a fused AdamW kernel (CUDA; CPU since torch 2.4, so in every torch the trainer supports).
FUSED_ADAMW_DEVICES = frozenset({"cuda", "cpu"})


def build_optimizer(model: torch.nn.Module, learning_rate: float, options: TrainingOptions) -> torch.optim.AdamW:
    parameters = list(model.parameters())
    return torch.optim.AdamW(
        parameters, lr=learning_rate, betas=(0.9, 0.95), eps=1e-8, weight_decay=options.weight_decay,
        **adamw_implementation(parameters),
    )


def adamw_implementation(parameters: list[torch.Tensor]) -> dict[str, bool]:
    """Fused AdamW (one kernel updates every parameter) where it exists: floating-point parameters, all on
    one device type that has the kernel (FSDP2's DTensor shards qualify); else the multi-tensor `foreach`."""
    devices = {p.device.type for p in parameters}
    if len(devices) == 1 and devices <= FUSED_ADAMW_DEVICES and all(p.is_floating_point() for p in parameters):
        return {"fused": True}
    return {"foreach": True}


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, options: TrainingOptions) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps(total_steps, options.warmup_fraction)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, total_steps, warmup, options.min_lr_ratio)
    )
