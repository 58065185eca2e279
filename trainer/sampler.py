"""Which packed sequences each rank trains on at each step: a seeded, resumable, world-size-aware sampler.

Every epoch shuffles the sequence indices with `seed + epoch`. Optimizer step k of
an epoch takes the k-th slice of `global_batch_size` indices of that order; rank r
takes every world_size-th index of the slice, in micro-batches. So the same global
batch is seen whatever the number of ranks, and the position (epoch, step in
epoch) is all a checkpoint needs to resume exactly.
"""

from dataclasses import dataclass

import torch

from kubetune.trainer.optim import BatchShape


@dataclass
class SamplerPosition:
    epoch: int = 0  # 0-based epoch being trained
    step_in_epoch: int = 0  # optimizer steps already done in that epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch}

    @classmethod
    def from_state_dict(cls, state: dict[str, int]) -> "SamplerPosition":
        return cls(int(state["epoch"]), int(state["step_in_epoch"]))


class StepSampler:
    def __init__(self, num_sequences: int, shape: BatchShape, rank: int, seed: int):
        self.num_sequences = num_sequences
        self.shape = shape
        self.rank = rank
        self.seed = seed

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.num_sequences // self.shape.global_batch_size)

    def epoch_order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.num_sequences, generator=generator).tolist()

    def micro_batches(self, position: SamplerPosition) -> list[list[int]]:
        """This rank's micro-batches for the step at `position`; always `accumulation_steps` of them.

        A micro-batch may be empty at the end of an epoch (the last global batch is
        partial): the rank still runs a forward and backward pass with no loss
        tokens, because FSDP needs every rank in every collective.
        """
        start = position.step_in_epoch * self.shape.global_batch_size
        step_slice = self.epoch_order(position.epoch)[start : start + self.shape.global_batch_size]
        mine = step_slice[self.rank :: self.shape.world_size]
        size = self.shape.micro_batch_size
        return [mine[i * size : (i + 1) * size] for i in range(self.shape.accumulation_steps)]

    def advance(self, position: SamplerPosition) -> SamplerPosition:
        if position.step_in_epoch + 1 >= self.steps_per_epoch:
            return SamplerPosition(position.epoch + 1, 0)
        return SamplerPosition(position.epoch, position.step_in_epoch + 1)
