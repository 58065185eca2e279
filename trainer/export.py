"""The final Hugging Face export, written shard by shard: no rank ever holds the whole model.

The parameters are gathered one at a time (every rank joins each all-gather) into
safetensors files of at most `max_shard_bytes`, which rank 0 writes as soon as each is
full, plus model.safetensors.index.json, the config and the tokenizer: a folder that
`from_pretrained` loads. Tensors are written in the layout of the base model's files
(trainer.architectures: Mixtral's experts one matrix each), as `save_pretrained` writes
them, so every Hugging Face tool reads the export. Rank 0's host memory holds one file's
tensors at a time; the weights stay in MASTER_DTYPE (fp32), exactly as trained.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor
from transformers import PreTrainedModel

from kubetune.trainer.architectures import Architecture, Region, architecture_of, experts_of
from kubetune.trainer.distributed import DistributedEnv, barrier
from kubetune.trainer.weight_loading import INDEX_FILE, SINGLE_FILE, model_tensors

EXPORT_SHARD_BYTES = 2 * 2**30  # per safetensors file: rank 0 holds one file's tensors at a time


@dataclass(frozen=True)
class ExportedTensor:
    """One model tensor and the file keys it is written under (several for stacked experts)."""

    name: str
    tensor: torch.Tensor
    file_keys: list[tuple[str, Region]]

    @property
    def nbytes(self) -> int:
        return self.tensor.numel() * self.tensor.element_size()


def plan_export_files(model: torch.nn.Module, max_shard_bytes: int) -> list[list[ExportedTensor]]:
    """The model's tensors grouped into files in order, each file up to `max_shard_bytes` (a tensor larger
    than that gets a file of its own). Every rank computes the same plan from the global shapes alone."""
    architecture: Architecture = architecture_of(model.config)  # type: ignore[assignment]
    experts = experts_of(model.config)
    files: list[list[ExportedTensor]] = [[]]
    size = 0
    seen: set[int] = set()
    for name, tensor in model_tensors(model).items():
        if id(tensor) in seen:
            continue  # a tied weight's second name: save_pretrained writes it once
        seen.add(id(tensor))
        entry = ExportedTensor(name, tensor, architecture.file_keys_of(name, experts))
        if files[-1] and size + entry.nbytes > max_shard_bytes:
            files.append([])
            size = 0
        files[-1].append(entry)
        size += entry.nbytes
    return files


def file_name(index: int, count: int) -> str:
    """save_pretrained's names: model.safetensors alone, model-00001-of-00003.safetensors when sharded."""
    return SINGLE_FILE if count == 1 else f"model-{index + 1:05d}-of-{count:05d}.safetensors"


def export_hf_model(
    model: torch.nn.Module, tokenizer, export_dir: Path, env: DistributedEnv, max_shard_bytes: int = EXPORT_SHARD_BYTES
) -> Path:
    """Collective: every rank gathers each parameter in turn; rank 0 writes the files, config and tokenizer."""
    export_dir = Path(export_dir)
    files = plan_export_files(model, max_shard_bytes)
    if env.is_main:
        export_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*export_dir.glob("model*.safetensors"), export_dir / INDEX_FILE]:  # an earlier attempt's
            stale.unlink(missing_ok=True)
    weight_map: dict[str, str] = {}
    total_bytes = 0
    for index, entries in enumerate(files):
        tensors: dict[str, torch.Tensor] = {}
        for entry in entries:
            full = entry.tensor.full_tensor() if isinstance(entry.tensor, DTensor) else entry.tensor
            if env.is_main:
                full = full.detach().to("cpu")
                for key, region in entry.file_keys:
                    tensors[key] = _region_of(full, region)
            del full
        if env.is_main:
            name = file_name(index, len(files))
            save_file(tensors, str(export_dir / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, name))
            total_bytes += sum(t.numel() * t.element_size() for t in tensors.values())
    if env.is_main:
        if len(files) > 1:
            index_file = {"metadata": {"total_size": total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
            (export_dir / INDEX_FILE).write_text(json.dumps(index_file, indent=2) + "\n")
        _write_config(model, export_dir)
        tokenizer.save_pretrained(export_dir)
    barrier()
    return export_dir


def _region_of(full: torch.Tensor, region: Region) -> torch.Tensor:
    """The file tensor of `region`, in its own memory (safetensors writes no views of shared storage)."""
    if region.expert is None:
        return full.contiguous()
    rows = full.shape[1] // region.parts
    return full[region.expert, region.part * rows : (region.part + 1) * rows].clone()


def _write_config(model: torch.nn.Module, export_dir: Path) -> None:
    model.config.use_cache = True  # training turned the KV cache off; inference wants it back
    # The FSDP wrapper's class (FSDPLlamaForCausalLM) is no transformers class: name the model's own.
    model.config.architectures = [_unwrapped_class(model).__name__]
    model.config.save_pretrained(export_dir)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(export_dir)


def _unwrapped_class(model: torch.nn.Module) -> type:
    return next(c for c in type(model).__mro__ if issubclass(c, PreTrainedModel) and not issubclass(c, FSDPModule))
