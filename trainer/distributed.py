"""Everything distributed: the process group, FSDP2 sharding, activation checkpointing, reductions.

The same code runs on GPUs (NCCL, bf16 compute) and on CPU (gloo, fp32): torchrun
starts one process per GPU (or one per node on CPU) and every process shards the
model with `fully_shard`, one FSDP unit per decoder layer plus the root.
"""

import datetime
import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import Shard

from kubetune.api.trainer_config import TrainingOptions



@dataclass(frozen=True)
class DistributedEnv:
    """Who this process is, from the variables torchrun sets (the only environment the trainer reads)."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_torchrun(cls) -> "DistributedEnv":
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )


def pick_device(options: TrainingOptions, env: DistributedEnv) -> torch.device:
    if options.device == "cpu" or (options.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    torch.cuda.set_device(env.local_rank)
    return torch.device("cuda", env.local_rank)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_process_group(env: DistributedEnv, device: torch.device, timeout_seconds: int) -> None:
    """NCCL on GPUs, gloo on CPU. Started by torchrun, so the rendezvous is already in the environment.

    A collective that has not finished within `timeout_seconds` (a hung or lost peer) ends the process
    with an error instead of holding the GPUs forever: NCCL's watchdog tears the communicator down
    (TORCH_NCCL_ASYNC_ERROR_HANDLING's default), gloo raises. The operator then resumes the run.
    """
    if dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:  # a plain `python -m kubetune.trainer`, without torchrun
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
    dist.init_process_group(
        backend=backend_for(device),
        rank=env.rank,
        world_size=env.world_size,
        timeout=datetime.timedelta(seconds=timeout_seconds),
        device_id=device if device.type == "cuda" else None,
    )


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """Collective: True on every rank when `flag` is True on at least one."""
    tensor = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def all_reduce_sum(value: float | int, device: torch.device) -> float:
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item())


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks Hugging Face itself would not split (`_no_split_modules`): one FSDP unit each."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [module for module in model.modules() if type(module).__name__ in names]


def wants_activation_checkpointing(options: TrainingOptions, device: torch.device) -> bool:
    # Recomputing activations pays on GPUs, where memory bounds the batch; tiny CPU runs only get slower.
    if options.activation_checkpointing is not None:
        return options.activation_checkpointing
    return device.type == "cuda"


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Non-reentrant checkpointing of every decoder layer. transformers renamed the method in 5.x (the old
    name warns and goes in v6); releases before the rename have only the old one."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def shard_model(model: torch.nn.Module, device: torch.device, options: TrainingOptions) -> FSDPModule:
    """Activation checkpointing, then fully_shard per decoder layer and at the root; parameters land on `device`.

    A model on the meta device (modeling.load_model) gets only this rank's shards allocated on `device`,
    uninitialised, for weight_loading to fill; a materialised one is moved there whole first. The root
    (embeddings, final norm, lm_head) keeps its parameters gathered from forward to backward, as FSDP
    does by default for the root: the chunked loss applies lm_head after the forward has returned.
    """
    if wants_activation_checkpointing(options, device):
        enable_activation_checkpointing(model)
    model.config.use_cache = False
    on_meta = any(parameter.is_meta for parameter in model.parameters())
    if not on_meta:
        model.to(device)
    policy = mixed_precision(device)
    # An explicit mesh on `device`: without one, fully_shard picks CUDA whenever a GPU is visible, even
    # for a run configured for CPU (a CPU reference run on a GPU node then fails on mixed devices).
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    placement = functools.partial(shard_placement, world_size=mesh.size())
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy, shard_placement_fn=placement)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=False)
    if on_meta:
        model.to_empty(device=device)
    return model  # type: ignore[return-value]


def shard_placement(parameter: torch.nn.Parameter, world_size: int) -> Shard | None:
    """Where FSDP splits a parameter: dim 0 (None, FSDP's default), except stacked experts (experts × rows ×
    columns, Mixtral's) whose count does not divide evenly over the ranks: split along their rows instead,
    or the ranks would hold whole experts unevenly (8 experts on 16 GPUs: half the ranks all of them)."""
    if parameter.dim() == 3 and parameter.shape[0] % world_size:
        return Shard(1)
    return None


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs, fp32 on CPU (where bf16 matmuls are slow and the tests compare curves exactly)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def mixed_precision(device: torch.device) -> MixedPrecisionPolicy:
    """bf16 compute with fp32 master weights and gradient reduction on GPUs; plain fp32 on CPU."""
    if compute_dtype(device) == torch.bfloat16:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def set_gradient_sync(model: torch.nn.Module, enabled: bool) -> None:
    """Skip the reduce-scatter on all but the last micro-batch of a step (gradient accumulation)."""
    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(enabled)
