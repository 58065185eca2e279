"""Everything distributed: the process group, FSDP2 sharding, activation checkpointing, reductions.

The same code runs on GPUs (NCCL, bf16 compute) and on CPU (gloo, fp32): torchrun
starts one process per GPU (or one per node on CPU) and every process shards the
model with `fully_shard`, one FSDP unit per decoder layer plus the root. A single
process on CPU (local mode's default, started without torchrun) needs neither: it
trains the plain module with no process group, and every collective here is then a no-op.
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
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

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


def needs_process_group(env: DistributedEnv, device: torch.device) -> bool:
    """More than one rank, or a GPU, where FSDP's mixed-precision policy is the bf16 compute path even for one
    process. A single CPU process trains the plain fp32 module and needs no group."""
    return env.world_size > 1 or device.type == "cuda"


def init_process_group(env: DistributedEnv, device: torch.device, timeout_seconds: int) -> None:
    """NCCL on GPUs, gloo on CPU. Started by torchrun, so the rendezvous is already in the environment.

    A collective that has not finished within `timeout_seconds` (a hung or lost peer) ends the process
    with an error instead of holding the GPUs forever: NCCL's watchdog tears the communicator down
    (TORCH_NCCL_ASYNC_ERROR_HANDLING's default), gloo raises. The operator then resumes the run.
    """
    if dist.is_initialized():
        return
    store = None
    if "MASTER_ADDR" not in os.environ:  # a plain `python -m kubetune.trainer`, without torchrun
        if env.world_size != 1:
            raise RuntimeError(f"WORLD_SIZE={env.world_size} without MASTER_ADDR: start the trainer with torchrun")
        store = dist.HashStore()  # a group of one needs no rendezvous (and no port that may be taken)
    dist.init_process_group(
        backend=backend_for(device),
        store=store,
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


def enable_activation_checkpointing(model: torch.nn.Module, mode: str = "full") -> None:
    """Non-reentrant checkpointing of every decoder layer: `full` recomputes the whole layer in the backward
    pass, `selective` only what lies between its matrix multiplications and attention, whose outputs it keeps
    (save_matmuls_and_attention). transformers renamed the method in 5.x (the old name warns and goes in v6);
    releases before the rename have only the old one."""
    kwargs: dict = {"use_reentrant": False}
    if mode == "selective":
        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, save_matmuls_and_attention)
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def prepare_model(model: torch.nn.Module, device: torch.device, options: TrainingOptions) -> torch.nn.Module:
    """The model ready to train on `device`: sharded (shard_model) under a process group, else the plain module
    with the same activation checkpointing; a model on the meta device gets its storage allocated, uninitialised."""
    if dist.is_initialized():
        return shard_model(model, device, options)
    prepare_layers(model, device, options)
    if any(parameter.is_meta for parameter in model.parameters()):
        model = model.to_empty(device=device)
        model.tie_weights()  # to_empty gives each module its own tensor: tied embeddings would come apart
        return model
    return model.to(device)


# The ops whose outputs selective checkpointing keeps: the expensive ones. Norms, activations, rotary
# embeddings and residual additions are recomputed (cheap, memory-bound, and their outputs as large).
SAVED_BY_SELECTIVE_CHECKPOINTING = {
    torch.ops.aten.mm.default,
    torch.ops.aten.addmm.default,
    torch.ops.aten.bmm.default,
    torch.ops.aten._scaled_dot_product_flash_attention.default,
    torch.ops.aten._scaled_dot_product_efficient_attention.default,
    torch.ops.aten._scaled_dot_product_cudnn_attention.default,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default,
}


def save_matmuls_and_attention(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in SAVED_BY_SELECTIVE_CHECKPOINTING else CheckpointPolicy.PREFER_RECOMPUTE


def prepare_layers(model: torch.nn.Module, device: torch.device, options: TrainingOptions) -> None:
    """Activation checkpointing and torch.compile, as the options say, before any sharding."""
    if wants_activation_checkpointing(options, device):
        enable_activation_checkpointing(model, options.activation_checkpointing_mode)
    if options.compile:
        compile_layers(model)
    model.config.use_cache = False


def compile_layers(model: torch.nn.Module) -> None:
    """torch.compile every part of each decoder layer except its attention (norms, MLP or experts), in place.

    The attention stays eager: the document attention's example boundaries differ from batch to batch, and
    a compiled attention would be recompiled for each new set of them. The rest sees the same shapes at
    every step (sequences are packed to the context length), so it compiles once per layer shape."""
    for layer in decoder_layers(model):
        for child in layer.children():
            if "Attention" not in type(child).__name__:
                child.compile()


def shard_model(model: torch.nn.Module, device: torch.device, options: TrainingOptions) -> FSDPModule:
    """Activation checkpointing and compilation (prepare_layers), then fully_shard per decoder layer and at the root; parameters land on `device`.

    A model on the meta device (modeling.load_model) gets only this rank's shards allocated on `device`,
    uninitialised, for weight_loading to fill; a materialised one is moved there whole first. The root
    (embeddings, final norm, lm_head) keeps its parameters gathered from forward to backward, as FSDP
    does by default for the root: the chunked loss applies lm_head after the forward has returned.
    """
    prepare_layers(model, device, options)
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
