"""The base model and its tokenizer: a hub id (online), a local or PVC folder (kubetune.api.locations), loaded with transformers."""

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from kubetune.api.locations import parse_model
from kubetune.api.trainer_config import TrainerConfig


class ModelSourceError(ValueError):
    """`spec.model` names something the trainer cannot load (a user error)."""


@dataclass(frozen=True)
class ModelSource:
    """What from_pretrained gets: a local folder, or a hub id (downloaded into cache_dir)."""

    location: str
    cache_dir: Path | None = None


def resolve_model_source(config: TrainerConfig) -> ModelSource:
    model, cache = config.spec.model, config.paths.model_cache
    location = parse_model(model)
    if location.kind == "hub_model":
        return ModelSource(location.repo, cache)  # type: ignore[arg-type]
    folder = location.local_path(config.paths.pvc_mount_root)
    if folder is None:
        raise ModelSourceError(f"spec.model: {model!r}: object-store model folders are not supported yet; copy the model to a PVC")
    if not (folder / "config.json").is_file():
        raise ModelSourceError(f"spec.model: {model!r}: {folder} is not a Hugging Face model folder (no config.json)")
    return ModelSource(str(folder), cache)


def load_tokenizer(source: ModelSource) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(source.location, cache_dir=source.cache_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: ModelSource) -> PreTrainedModel:
    """fp32 master weights on CPU; distributed.shard_model moves them to the device and shards them.

    SDPA attention reads the 4D block-causal masks of packed sequences.
    """
    return AutoModelForCausalLM.from_pretrained(
        source.location, cache_dir=source.cache_dir, dtype=torch.float32, attn_implementation="sdpa"
    )

