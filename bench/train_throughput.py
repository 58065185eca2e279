"""Training throughput of Kubetune's trainer step: tokens per second, on CPU and (when present) CUDA.

It runs the trainer's own components in one process, prepared as the trainer prepares a
single process (on CPU the plain module without a process group; on a GPU an NCCL group
of one and FSDP2 `fully_shard` per decoder layer), the packed-sequence loss and AdamW: a
random-weight Llama-architecture model built from a real config, trained on the
quickstart chat data packed to --context tokens. The first --warmup steps are not
timed (allocator and kernel warm-up; torch.compile compiles there). The speed switches of
TrainingOptions are flags: --compile, --no-chunked-loss, --activation-checkpointing
[--activation-checkpointing-mode selective].

    PYTHONSAFEPATH=1 .venv/bin/python bench/train_throughput.py                 # CPU, tiny model
    PYTHONSAFEPATH=1 .venv/bin/python bench/train_throughput.py --hidden 512 --layers 8 --context 1024
    PYTHONSAFEPATH=1 .venv/bin/python bench/train_throughput.py --device cuda   # bf16 on the GPU

Results go to stdout as one JSON line per device; record them in bench/RESULTS.md
with the machine they came from. Timings never go into tests.
"""

import argparse
import json
import os
import socket
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def measure(device_name: str, args: argparse.Namespace) -> dict:
    from kubetune.api.spec import TaskType
    from kubetune.api.trainer_config import TrainingOptions
    from kubetune.trainer.data import DataConfig, build_packed_dataset
    from kubetune.trainer.distributed import DistributedEnv, init_process_group, needs_process_group, prepare_model
    from kubetune.trainer.optim import build_optimizer, build_scheduler
    from kubetune.trainer.steps import load_micro_batch, train_step
    from kubetune.trainer.tiny_models import build_tiny_model, build_tokenizer

    options = TrainingOptions(
        device=device_name, micro_batch_size=args.micro_batch, activation_checkpointing=args.activation_checkpointing,
        activation_checkpointing_mode=args.activation_checkpointing_mode, compile=args.compile, chunked_loss=args.chunked_loss,
    )
    env = DistributedEnv(0, 1, 0)
    device = torch.device(device_name, 0) if device_name == "cuda" else torch.device("cpu")
    if needs_process_group(env, device):
        init_process_group(env, device, options.collective_timeout_seconds)
    tokenizer = build_tokenizer("llama")
    data = build_packed_dataset(
        DataConfig(str(REPO_ROOT / "examples/data/train.jsonl"), TaskType.CHAT_COMPLETION, args.context), tokenizer
    )
    model = build_tiny_model("llama", tokenizer, hidden_size=args.hidden, layers=args.layers, heads=max(4, args.hidden // 64),
                             max_position_embeddings=max(2048, args.context))
    parameters = sum(p.numel() for p in model.parameters())
    model = prepare_model(model.train(), device, options)
    optimizer = build_optimizer(model, 1e-4, options)
    scheduler = build_scheduler(optimizer, args.steps + args.warmup, options)

    from kubetune.trainer import host_memory

    tokens, started, baseline = 0, None, host_memory.resident_bytes()
    host_memory.reset_peak()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, tokens = time.perf_counter(), 0
        indices = [(step * args.micro_batch + i) % len(data) for i in range(args.micro_batch)]
        batch = load_micro_batch(data, indices, filler=0, device=device)
        result = train_step(model, optimizer, scheduler, [batch], 1, 1.0, device, chunked_loss=options.chunked_loss)
        tokens += result.real_tokens
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # the rise of the process's peak resident memory over the set-up (model, optimizer, data)
        peak = ((host_memory.peak_resident_bytes() or 0) - (baseline or 0)) / 2**20
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return {
        "options": {k: getattr(options, k) for k in ("compile", "chunked_loss", "activation_checkpointing", "activation_checkpointing_mode")},
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "parameters": parameters,
        "context": args.context,
        "micro_batch": args.micro_batch,
        "steps": args.steps,
        "tokens_per_second": round(tokens / seconds, 1),
        "seconds_per_step": round(seconds / args.steps, 4),
        "packing_efficiency": round(data.stats.efficiency, 3),
        "peak_memory_mib": round(peak, 1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CPU, and CUDA too when present")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the shared dev machine: 1)")
    parser.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--activation-checkpointing-mode", choices=["full", "selective"], default="full")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False, help="torch.compile the decoder layers")
    parser.add_argument("--chunked-loss", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    devices = ["cpu", "cuda"] if args.device == "auto" and torch.cuda.is_available() else [args.device if args.device != "auto" else "cpu"]
    for device in devices:
        os.environ["MASTER_PORT"] = str(free_port())
        print(json.dumps(measure(device, args)), flush=True)


if __name__ == "__main__":
    main()
