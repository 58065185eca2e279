"""Checkpoint save and restore times, blocking against background (asynchronous) saves.

One process saves what the trainer saves (trainer/checkpoint.py: the model and AdamW's state through
torch.distributed.checkpoint, RNG states, progress, the COMPLETE marker, `latest`) for a random-weight
Llama-architecture model, and restores it. For a blocking save, training waits for the whole write. For a
background save (TrainingOptions.async_checkpoint), training waits only while the state is copied to host
memory (`start_checkpoint` returning); the write goes on in a thread until `finish_checkpoint` marks it
complete. Each mode is measured --repeat times, alternating, into fresh folders on the same disk.

    PYTHONSAFEPATH=1 .venv/bin/python bench/checkpoint_save.py                        # 317M parameters
    PYTHONSAFEPATH=1 .venv/bin/python bench/checkpoint_save.py --hidden 2048 --layers 16 --folder /fast/disk
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch


def build(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        hidden_size=args.hidden, intermediate_size=4 * args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64), num_key_value_heads=max(1, args.hidden // 64),
        vocab_size=32000, tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = model.to_empty(device="cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.uniform_(-0.02, 0.02)
            parameter.grad = torch.full_like(parameter, 1e-3)
    optimizer.step()  # AdamW's state (two fp32 moments per parameter) exists, as after any training step
    optimizer.zero_grad(set_to_none=True)
    return model, optimizer


def bytes_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="where checkpoints go (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # DCP: "assuming the intent is to save in a single process"

    from kubetune.trainer import checkpoint as ckpt
    from kubetune.trainer.distributed import DistributedEnv

    env = DistributedEnv(0, 1, 0)
    model, optimizer = build(args)
    parameters = sum(p.numel() for p in model.parameters())
    root = Path(tempfile.mkdtemp(prefix="kt-ckpt-", dir=args.folder))
    rows: dict[str, list[dict]] = {"blocking": [], "background": []}
    try:
        step = 0
        for _ in range(args.repeat):
            for mode in ("blocking", "background"):
                step += 1
                progress = ckpt.TrainingProgress(step=step)
                started = time.perf_counter()
                pending = ckpt.start_checkpoint(root, model, optimizer, progress, env, background=mode == "background")
                returned = time.perf_counter()
                path = ckpt.finish_checkpoint(pending, env)
                complete = time.perf_counter()
                loaded = time.perf_counter()
                ckpt.load_checkpoint(path, model, optimizer, env)
                restored = time.perf_counter() - loaded
                rows[mode].append({
                    "mode": mode, "training_blocked_s": round(returned - started if mode == "background" else complete - started, 2),
                    "until_complete_s": round(complete - started, 2), "restore_s": round(restored, 2),
                    "checkpoint_mib": round(bytes_of(path) / 2**20),
                })
                print(json.dumps(rows[mode][-1]), flush=True)
                shutil.rmtree(path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = {"parameters": parameters, "repeat": args.repeat}
    for mode, measured in rows.items():
        for key in ("training_blocked_s", "until_complete_s", "restore_s"):
            summary[f"{mode}_{key}"] = statistics.median(r[key] for r in measured)
    print(json.dumps(summary))
    print(f"background/blocking training blocked ratio: {summary['background_training_blocked_s'] / summary['blocking_training_blocked_s']:.2f}")


if __name__ == "__main__":
    main()
