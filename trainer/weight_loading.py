"""Each rank reads only its own shards from a model folder's safetensors files.

The model is built on the meta device and sharded first (modeling.load_model,
distributed.shard_model): its parameters are DTensors split along one dimension (dim 0,
stacked experts sometimes dim 1) whose local shards are allocated but empty. The safetensors
files are then opened one at a time (memory-mapped) and every rank copies the slices of its
own shards out of them with `get_slice`, cast to the parameters' dtype. A rank's host memory
while loading therefore holds its own shards (on CPU) and the pages it read of the one open
file, never the whole model.

Where a file's tensor goes is the architecture's business (trainer.architectures): the
parameter of the same name, or one expert's block of a stacked-experts parameter.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch.distributed.tensor import DTensor, Shard

from kubetune.trainer.architectures import Architecture, Region

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class WeightFileError(ValueError):
    """The model folder's weights do not fit the model its config describes (missing, misshapen, not safetensors)."""


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a Hugging Face model folder: those its index names, or the single model.safetensors."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise WeightFileError(f"{index} names files that are not there: {', '.join(missing)}")
        return [folder / name for name in names]
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    raise WeightFileError(f"{folder} has neither {SINGLE_FILE} nor {INDEX_FILE}: the trainer reads safetensors weights only")


@dataclass
class LocalShard:
    """This rank's part of one model tensor of `shape`: `tensor` holds indices [start, stop) of dimension
    `dim` (all of it where the tensor is not sharded); `seen` records which regions the files provided."""

    tensor: torch.Tensor
    dim: int
    start: int
    stop: int
    shape: tuple[int, ...]
    seen: set[tuple[int | None, int]] = field(default_factory=set)
    parts: int = 1

    def complete(self) -> bool:
        if (None, 0) in self.seen:
            return True
        return bool(self.seen) and len(self.seen) == self.shape[0] * self.parts


def local_shard_of(tensor: torch.Tensor) -> LocalShard:
    """The part of `tensor` this rank holds: FSDP2 splits one dimension like torch.chunk, a chunk per rank."""
    if not isinstance(tensor, DTensor):
        return LocalShard(tensor, 0, 0, tensor.shape[0], tuple(tensor.shape))
    (placement,) = tensor.placements
    if not isinstance(placement, Shard):
        raise NotImplementedError(f"a parameter placed as {tensor.placements}: the loader reads FSDP's shards only")
    mesh, size = tensor.device_mesh, tensor.shape[placement.dim]
    chunk = math.ceil(size / mesh.size())
    start = min(mesh.get_local_rank() * chunk, size)
    stop = min(start + chunk, size)
    local = tensor.to_local()
    if local.shape[placement.dim] != stop - start:
        raise AssertionError(f"expected {start}:{stop} of dim {placement.dim} of {tuple(tensor.shape)} here, FSDP gave {tuple(local.shape)}")
    return LocalShard(local, placement.dim, start, stop, tuple(tensor.shape))


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor the checkpoint files hold: parameters under each of their names (a tied weight is one
    tensor with two names) and persistent buffers. Non-persistent buffers are computed, never stored."""
    tensors = dict(model.named_parameters(remove_duplicate=False))
    for module_name, module in model.named_modules():
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and name not in module._non_persistent_buffers_set:
                tensors[f"{module_name}.{name}" if module_name else name] = buffer
    return tensors


@torch.no_grad()
def load_local_shards(model: torch.nn.Module, files: list[Path], architecture: Architecture) -> list[str]:
    """Fill this rank's shards from `files`, one file open at a time; return the file keys the model has
    no place for (a tied weight's second copy, say). Raises WeightFileError when a tensor is missing or
    misshapen, on every rank alike (what is missing does not depend on the rank)."""
    by_tensor: dict[int, LocalShard] = {}
    targets = {}
    for name, tensor in model_tensors(model).items():
        targets[name] = by_tensor.setdefault(id(tensor), local_shard_of(tensor))
    unused = []
    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as checkpoint:
            for key in checkpoint.keys():
                region = architecture.region_of(key)
                target = targets.get(region.parameter)
                if target is None:
                    unused.append(key)
                    continue
                copy_region(checkpoint.get_slice(key), key, region, target)
    incomplete: dict[int, str] = {}
    for name, target in targets.items():
        if not target.complete():
            incomplete.setdefault(id(target), name)
    if incomplete:
        names = sorted(incomplete.values())
        raise WeightFileError(f"the model's files lack {len(names)} weights: {', '.join(names[:5])}{' …' if len(names) > 5 else ''}")
    return unused


def copy_region(source, key: str, region: Region, target: LocalShard) -> None:
    """Copy what this rank holds of one file tensor (`source`, a safetensors slice) into its shard."""
    shape = tuple(source.get_shape())
    if region.expert is None:
        if (None, 0) in target.seen:
            return  # the second name of a tied weight: the same values again
        if shape != target.shape:
            raise WeightFileError(f"{key} has shape {shape}, the model expects {target.shape}")
        if target.stop > target.start:
            target.tensor.copy_(source[_along(target.dim, target.start, target.stop)])
        target.seen.add((None, 0))
        return
    experts, rows = target.shape[0], target.shape[1] // region.parts
    expected = (rows, *target.shape[2:])
    if shape != expected or region.expert >= experts:
        raise WeightFileError(f"{key} has shape {shape}, expert {region.expert} of {region.parameter} {target.shape} expects {expected}")
    target.parts = region.parts
    target.seen.add((region.expert, region.part))
    # The file tensor is block (expert, part) of the parameter: index `expert` of dim 0, and
    # [part × rows, (part + 1) × rows) of dim 1; its own dims are the parameter's dims 1, 2, ….
    block = [region.expert, slice(region.part * rows, (region.part + 1) * rows)] + [slice(None)] * (len(target.shape) - 2)
    if target.dim == 0:
        if target.start <= region.expert < target.stop:
            block[0] = region.expert - target.start
            target.tensor[tuple(block)].copy_(source[:])
        return
    offset, extent = (region.part * rows, rows) if target.dim == 1 else (0, target.shape[target.dim])
    low, high = max(target.start, offset), min(target.stop, offset + extent)
    if low < high:
        block[target.dim] = slice(low - target.start, high - target.start)
        target.tensor[tuple(block)].copy_(source[_along(target.dim - 1, low - offset, high - offset)])


def _along(dim: int, start: int, stop: int) -> tuple[slice, ...]:
    """An index selecting [start, stop) of dimension `dim`."""
    return (slice(None),) * dim + (slice(start, stop),)


@torch.no_grad()
def rebuild_non_persistent_buffers(model: torch.nn.Module) -> None:
    """Buffers computed from the config and never stored (rotary embeddings' inv_freq), left uninitialised
    by `to_empty`: transformers' own initialisation of their module computes them, as from_pretrained does.
    Each is filled with NaN first, so one that initialisation does not compute is caught, not trained on."""
    for module_name, module in model.named_modules():
        names = sorted(module._non_persistent_buffers_set)
        buffers = [module._buffers[name] for name in names if module._buffers.get(name) is not None]
        if not buffers:
            continue
        if next(module.parameters(recurse=False), None) is not None or not all(b.is_floating_point() for b in buffers):
            raise NotImplementedError(f"{module_name} ({type(module).__name__}): non-persistent buffers next to parameters")
        for buffer in buffers:
            buffer.fill_(float("nan"))
        model._init_weights(module)
        unset = [name for name in names if torch.isnan(module._buffers[name]).any()]
        if unset:
            raise NotImplementedError(f"{module_name} ({type(module).__name__}): nothing computes the buffers {unset}")
