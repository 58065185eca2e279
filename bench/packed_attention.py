"""Packed attention on CPU: the dense block-causal mask against the trainer's document attention.

One training step (forward, the packed loss, backward, fused AdamW) of a random-weight Llama-architecture
model on the quickstart chat data packed to each context length, with the attention either SDPA with the
dense [B, 1, L, L] mask (the trainer before issue 17, still the fallback of other attention
implementations) or kubetune.trainer.attention's per-example SDPA with no mask. Each (attention, context)
runs in a fresh process so its peak resident memory (VmHWM, reset after set-up) is its own; the first
--warmup steps are not timed.

    PYTHONSAFEPATH=1 .venv/bin/python bench/packed_attention.py
    PYTHONSAFEPATH=1 .venv/bin/python bench/packed_attention.py --contexts 512 2048 --steps 4

Prints one JSON line per run, then the ratios last. Timings never go into tests.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODES = ("dense", "documents")


def measure(mode: str, context: int, args: argparse.Namespace) -> dict:
    import torch

    from kubetune.api.spec import TaskType
    from kubetune.api.trainer_config import TrainingOptions
    from kubetune.trainer import host_memory
    from kubetune.trainer.attention import DOCUMENT_ATTENTION
    from kubetune.trainer.data import DataConfig, build_packed_dataset, collate
    from kubetune.trainer.optim import build_optimizer
    from kubetune.trainer.steps import forward_summed_loss
    from kubetune.trainer.tiny_models import build_tiny_model, build_tokenizer

    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer("llama")
    data = build_packed_dataset(
        DataConfig(str(REPO_ROOT / "examples/data/train.jsonl"), TaskType.CHAT_COMPLETION, context), tokenizer
    )
    attention = DOCUMENT_ATTENTION if mode == "documents" else "sdpa"
    model = build_tiny_model("llama", tokenizer, hidden_size=args.hidden, layers=args.layers, heads=args.hidden // 64,
                             max_position_embeddings=max(2048, context), attn_implementation=attention).train()
    optimizer = build_optimizer(model, 1e-4, TrainingOptions(device="cpu"))
    batches = [collate([data[(step * args.micro_batch + i) % len(data)] for i in range(args.micro_batch)])
               for step in range(args.warmup + args.steps)]
    host_memory.reset_peak()
    baseline = host_memory.resident_bytes()
    tokens, started = 0, time.perf_counter()
    for step, batch in enumerate(batches):
        if step == args.warmup:
            tokens, started = 0, time.perf_counter()
        forward_summed_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int((batch["input_ids"] != tokenizer.pad_token_id).sum())
    seconds = time.perf_counter() - started
    segments = [(row == 0).nonzero().flatten().tolist() + [context] for b in batches for row in b["position_ids"]]
    useful = sum((end - start) ** 2 for s in segments for start, end in zip(s, s[1:])) / (len(segments) * context**2)
    return {
        "attention": mode,
        "context": context,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_second": round(tokens / seconds, 1),
        "seconds_per_step": round(seconds / args.steps, 3),
        "peak_memory_over_setup_mib": round((host_memory.peak_resident_bytes() - baseline) / 2**20, 1),
        "useful_score_share": round(useful, 4),  # Σ Lᵢ² / L² per row: what document attention computes
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "CONTEXT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args)))
        return
    results = {}
    for context in args.contexts:
        for mode in MODES:
            child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--one", mode, str(context)],
                                   check=True, capture_output=True, text=True, cwd=REPO_ROOT)
            results[mode, context] = json.loads(child.stdout.strip().splitlines()[-1])
            print(json.dumps(results[mode, context]), flush=True)
    for context in args.contexts:
        dense, documents = results["dense", context], results["documents", context]
        print(f"context {context}: documents/dense peak memory ratio: "
              f"{documents['peak_memory_over_setup_mib'] / dense['peak_memory_over_setup_mib']:.2f}")
    for context in args.contexts:
        dense, documents = results["dense", context], results["documents", context]
        print(f"context {context}: documents/dense tokens/s ratio: "
              f"{documents['tokens_per_second'] / dense['tokens_per_second']:.2f}")


if __name__ == "__main__":
    main()
