"""The final Hugging Face export: full weights gathered from the shards, config and tokenizer, as safetensors."""

from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from kubetune.trainer.distributed import DistributedEnv, barrier


def export_hf_model(model: torch.nn.Module, tokenizer, export_dir: Path, env: DistributedEnv) -> Path:
    """Collective: every rank helps gather the full state dict to rank 0's CPU memory; rank 0 writes it."""
    full_state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if env.is_main:
        export_dir = Path(export_dir)
        export_dir.mkdir(parents=True, exist_ok=True)
        model.config.use_cache = True  # training turned the KV cache off; inference wants it back
        model.save_pretrained(export_dir, state_dict=full_state, safe_serialization=True)
        tokenizer.save_pretrained(export_dir)
    barrier()
    return Path(export_dir)
