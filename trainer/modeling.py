"""The base model and its tokenizer: a hub id (online), a local or PVC folder, loaded with transformers."""

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from kubetune.trainer.config import TrainerConfig


class ModelSourceError(ValueError):
    """`spec.model` names something the trainer cannot load (a user error)."""


@dataclass(frozen=True)
class ModelSource:
    """What from_pretrained gets: a local folder, or a hub id (downloaded into cache_dir)."""

    location: str
    cache_dir: Path | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.location).is_dir()


def resolve_model_source(config: TrainerConfig) -> ModelSource:
    model = config.spec.model
    cache = config.paths.model_cache
    if model.startswith("pvc://"):
        return _existing(config.paths.pvc_mount_root / model.removeprefix("pvc://"), model, cache)
    if model.startswith("file://"):
        return _existing(Path(model.removeprefix("file://")), model, cache)
    if model.startswith(("/", "./", "../")):
        return _existing(Path(model), model, cache)
    if model.startswith("hf://"):
        return ModelSource(model.removeprefix("hf://"), cache)
    if model.startswith(("s3://", "gs://", "abfs://", "abfss://")):
        raise ModelSourceError(f"spec.model: {model!r}: object-store model folders are not supported yet; copy the model to a PVC")
    return ModelSource(model, cache)  # a supported model's hub id


def _existing(path: Path, model: str, cache: Path | None) -> ModelSource:
    if not (path / "config.json").is_file():
        raise ModelSourceError(f"spec.model: {model!r}: {path} is not a Hugging Face model folder (no config.json)")
    return ModelSource(str(path), cache)


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


def model_max_context(model: PreTrainedModel) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)
