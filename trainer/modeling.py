"""The base model and its tokenizer: a hub id, a local, PVC or object-store folder (kubetune.api.locations).

The model is never materialised whole: it is built on the meta device from its config,
sharded (distributed.prepare_model; a single CPU process keeps the plain module, and
reads every tensor whole), and each rank then reads only its own shards from the
folder's safetensors files (weight_loading). A hub id is read from the local snapshot
folder of the model cache when it is there, else downloaded into that cache first.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from kubetune.api.locations import parse_model
from kubetune.api.object_store import ObjectStoreError, stage_folder
from kubetune.api.trainer_config import TrainerConfig, TrainingOptions
from kubetune.trainer import host_memory
from kubetune.trainer.architectures import ARCHITECTURES, architecture_of
from kubetune.trainer.attention import DOCUMENT_ATTENTION
from kubetune.trainer.distributed import prepare_model
from kubetune.trainer.weight_loading import WeightFileError, load_local_shards, rebuild_non_persistent_buffers, safetensors_files

log = logging.getLogger("kubetune.trainer")

# The parameters (the master weights, and so AdamW's state) stay fp32; FSDP computes in bf16 on GPUs
# (distributed.mixed_precision). Files in bf16 are upcast exactly on load.
MASTER_DTYPE = torch.float32
# What a model folder needs from the hub: config, safetensors weights, tokenizer and chat template
# (not the .bin/.pth copies some repositories also hold).
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]


class ModelSourceError(ValueError):
    """`spec.model` names something the trainer cannot load (a user error)."""


@dataclass(frozen=True)
class ModelSource:
    """What the trainer reads: a local folder, or a hub id not in the cache yet (downloaded into cache_dir)."""

    location: str
    cache_dir: Path | None = None


def resolve_model_source(config: TrainerConfig) -> ModelSource:
    model, cache = config.spec.model, config.paths.model_cache
    location = parse_model(model)
    if location.kind == "hub_model":
        snapshot = cached_snapshot(location.repo, cache)  # type: ignore[arg-type]
        return ModelSource(str(snapshot) if snapshot else location.repo, cache)  # type: ignore[arg-type]
    folder = location.local_path(config.paths.pvc_mount_root)
    if folder is None:  # an object store: copied once per node into a local staging folder
        try:
            folder = stage_folder(model)
        except ObjectStoreError as error:
            raise ModelSourceError(f"spec.model: {error}") from None
    if not (folder / "config.json").is_file():
        raise ModelSourceError(f"spec.model: {model!r}: {folder} is not a Hugging Face model folder (no config.json)")
    return ModelSource(str(folder), cache)


def cached_snapshot(repo: str, cache_dir: Path | None) -> Path | None:
    """The model cache's snapshot folder of a hub id, when it holds a complete model (config and weights)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, cache_dir=cache_dir, local_files_only=True))
    except LocalEntryNotFoundError:
        return None
    try:
        safetensors_files(folder)
    except WeightFileError:
        return None
    return folder if (folder / "config.json").is_file() else None


def model_folder(source: ModelSource) -> Path:
    """The local folder holding the model: the source itself, or the hub id's snapshot once downloaded."""
    if Path(source.location).is_dir():
        return Path(source.location)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source.location, cache_dir=source.cache_dir, allow_patterns=HUB_FILES))


def load_tokenizer(source: ModelSource) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(source.location, cache_dir=source.cache_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: ModelSource, device: torch.device, options: TrainingOptions) -> torch.nn.Module:
    """Collective: the model sharded over every rank on `device` (the plain module without a process group),
    in MASTER_DTYPE, each rank having read only its own shards. Its attention is the trainer's document attention (kubetune.trainer.attention):
    packed examples attend each to itself, without a mask."""
    started, rss_before = time.perf_counter(), host_memory.resident_bytes()
    host_memory.reset_peak()
    folder = model_folder(source)
    config = AutoConfig.from_pretrained(folder)
    architecture = architecture_of(config)
    if architecture is None:
        raise ModelSourceError(
            f"spec.model: {source.location}: model_type {config.model_type!r} is not supported "
            f"(supported: {', '.join(sorted(ARCHITECTURES))}; docs/trainer.md says how to add one)"
        )
    try:
        files = safetensors_files(folder)
    except WeightFileError as error:
        raise ModelSourceError(f"spec.model: {source.location}: {error}") from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=MASTER_DTYPE, attn_implementation=DOCUMENT_ATTENTION)
    model = prepare_model(model, device, options)
    rebuild_non_persistent_buffers(model)
    try:
        unused = load_local_shards(model, files, architecture)
    except WeightFileError as error:
        raise ModelSourceError(f"spec.model: {source.location}: {error}") from None
    if unused:
        log.info("the model has no place for %d tensors of its files (e.g. %s)", len(unused), unused[0])
    peak = host_memory.peak_resident_bytes()
    log.info(
        "loaded %s from %d files in %.1f s; host memory peak %s MiB (%s MiB before)",
        folder, len(files), time.perf_counter() - started, _mib(peak), _mib(rss_before),
    )
    return model



def _mib(size: int | None) -> str:
    return f"{size / 2**20:.0f}" if size is not None else "?"
