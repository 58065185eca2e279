"""Peak host memory per rank and load time of the base model: the old full load against the sharded load.

old: every rank reads the whole model in fp32 (`from_pretrained`), then shards it (the trainer
     before issue 13);
new: the model is built on the meta device and sharded, then each rank reads only its own rows
     from the safetensors files (kubetune.trainer.modeling.load_model).

    PYTHONSAFEPATH=1 .venv/bin/python bench/load_memory.py                       # 2 ranks, a ~320M Llama
    PYTHONSAFEPATH=1 .venv/bin/python bench/load_memory.py --hidden 512 --layers 4 --nproc 2

Subcommands (the tests run the same ones):
    make-model DIR   a random Llama saved as bf16 safetensors shards, with a tokenizer
    worker           run by torchrun: load one way, optionally take one training step and export;
                     writes one JSON per rank (peak RSS while loading, load seconds; with the step:
                     loss, grad norm, peak RSS in the step and kubetune.api.memory_plan's estimate of it)
    compare          (the default) both ways on --nproc ranks with the step, one JSON line per rank and a table

Peak RSS is the rise of VmHWM over the resident size before loading (the peak is reset before loading
and again before the step, see kubetune.trainer.host_memory). Record results in bench/RESULTS.md with
the machine they came from.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
SEQUENCES, SEQUENCE_TOKENS, MASKED_PREFIX = 2, 64, 8  # the training step's global batch


def make_model(folder: Path, hidden: int, layers: int, intermediate: int, vocab: int, shard_mb: int, seed: int = 0) -> dict:
    """A random-weight Llama (untied head) saved in bf16 as safetensors files of about `shard_mb` MB each."""
    import torch
    import transformers

    from kubetune.trainer.tiny_models import build_tokenizer

    tokenizer = build_tokenizer("llama")
    heads = max(1, hidden // 64)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, max_shard_size=f"{shard_mb}MB")
    tokenizer.save_pretrained(folder)
    files = sorted(folder.glob("*.safetensors"))
    return {"parameters": sum(p.numel() for p in model.parameters()), "files": len(files), "largest_file_bytes": max(f.stat().st_size for f in files)}


def worker(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kubetune.api.trainer_config import TrainingOptions
    from kubetune.trainer import host_memory
    from kubetune.trainer.distributed import DistributedEnv, init_process_group, shard_model
    from kubetune.trainer.modeling import MASTER_DTYPE, ModelSource, load_model

    env = DistributedEnv.from_torchrun()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu")
    options = TrainingOptions(device="cpu")
    init_process_group(env, device, 600)
    _import_model_code(args.model)
    rss_before = host_memory.resident_bytes()
    host_memory.reset_peak()
    started = time.perf_counter()
    if args.how == "old":
        full = AutoModelForCausalLM.from_pretrained(args.model, dtype=MASTER_DTYPE, attn_implementation="sdpa")
        model = shard_model(full, device, options)
        del full
    else:
        model = load_model(ModelSource(str(args.model)), device, options)
    result = {
        "how": args.how, "rank": env.rank, "world_size": env.world_size,
        "load_seconds": round(time.perf_counter() - started, 2),
        "rss_before_bytes": rss_before, "peak_rss_bytes": host_memory.peak_resident_bytes(),
    }
    result["load_peak_bytes"] = result["peak_rss_bytes"] - rss_before
    if args.train_step:
        host_memory.reset_peak()
        result.update(one_training_step(model, env, device))
        result["step_peak_bytes"] = host_memory.peak_resident_bytes() - rss_before
        result["estimate_bytes"] = cpu_estimate(model.config.to_dict(), env.world_size)
    if args.dump_shards:
        _dump_local_shards(model, args.out.with_name(f"{args.out.stem}-shards-rank{env.rank}.pt"))
    if args.export:
        from kubetune.trainer.export import export_hf_model

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        export_hf_model(model, tokenizer, args.export, env, max_shard_bytes=args.export_shard_mb * 2**20)
    args.out.with_name(f"{args.out.stem}-rank{env.rank}.json").write_text(json.dumps(result))
    torch.distributed.destroy_process_group()


def _import_model_code(folder: Path) -> None:
    """Build the model once on the meta device: the imports it triggers (transformers loads each
    architecture's code lazily) are then not counted as memory the load takes."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))


def cpu_estimate(config: dict, world_size: int) -> int:
    """kubetune.api.memory_plan's estimate for this step on CPU: fp32 compute, no GPU runtime, no
    activation checkpointing (the trainer's CPU default), one sequence per rank."""
    from kubetune.api.memory_plan import ModelShape, estimate_memory

    shape = ModelShape.from_config(config)
    sequences = -(-SEQUENCES // world_size)
    return estimate_memory(shape, SEQUENCE_TOKENS, sequences, False, world_size, compute_bytes=4, runtime_bytes=0).total


def one_training_step(model, env, device) -> dict:
    """One optimizer step on a fixed global batch of SEQUENCES sequences, split over the ranks as the
    sampler splits it (rank r takes every world-size-th one); loss and gradient norm over the whole batch."""
    import torch

    from kubetune.api.data_rules import IGNORE_INDEX
    from kubetune.api.trainer_config import TrainingOptions
    from kubetune.trainer.loss import count_loss_tokens
    from kubetune.trainer.optim import build_optimizer, build_scheduler
    from kubetune.trainer.steps import train_step

    generator = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    batches = []
    for index in range(SEQUENCES):
        input_ids = torch.randint(0, vocab, (1, SEQUENCE_TOKENS), generator=generator)
        if index % env.world_size != env.rank:
            continue
        labels = input_ids.clone()
        labels[:, :MASKED_PREFIX] = IGNORE_INDEX
        position_ids = torch.arange(SEQUENCE_TOKENS).unsqueeze(0)
        batches.append({
            "input_ids": input_ids.to(device), "labels": labels.to(device), "position_ids": position_ids.to(device),
            "loss_tokens": count_loss_tokens(labels, position_ids), "real_tokens": SEQUENCE_TOKENS,
        })
    options = TrainingOptions(device="cpu", warmup_fraction=0)
    optimizer = build_optimizer(model, 1e-4, options)
    scheduler = build_scheduler(optimizer, 1, options)
    step = train_step(model, optimizer, scheduler, batches, env.world_size, 1.0, device)
    return {"loss": step.loss, "grad_norm": step.grad_norm}


def _dump_local_shards(model, path: Path) -> None:
    """This rank's shard of every parameter (dim, start, tensor), to rebuild the weights without gathering them."""
    import torch

    from kubetune.trainer.weight_loading import local_shard_of

    shards = {}
    for name, parameter in model.named_parameters():
        shard = local_shard_of(parameter)
        shards[name] = (shard.dim, shard.start, shard.tensor.detach().clone())
    torch.save(shards, path)


def torchrun_command(nproc: int, *worker_args: str) -> list[str]:
    return [TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", str(Path(__file__).resolve()), "worker", *worker_args]


def worker_env() -> dict[str, str]:
    """One thread per rank (the machine is shared) and no working directory on sys.path."""
    return {**os.environ, "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def read_results(out: Path, nproc: int) -> list[dict]:
    return [json.loads(out.with_name(f"{out.stem}-rank{rank}.json").read_text()) for rank in range(nproc)]


def compare(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="load-memory-") as scratch:
        folder = args.model or Path(scratch) / "model"
        facts = make_model(folder, args.hidden, args.layers, args.intermediate, args.vocab, args.shard_mb) if not args.model else {}
        print(json.dumps({"model": str(folder), **facts}), flush=True)
        rows = []
        for how in ("old", "new"):
            out = Path(scratch) / how
            command = torchrun_command(args.nproc, "--model", str(folder), "--how", how, "--out", str(out), "--train-step")
            subprocess.run(command, check=True, env=worker_env())
            for result in read_results(out, args.nproc):
                print(json.dumps(result), flush=True)
                rows.append(result)
    print("\n| load | rank | peak host memory while loading | load time | peak in the first step | memory plan's estimate |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['how']} | {row['rank']} | {row['load_peak_bytes'] / 2**20:,.0f} MiB | {row['load_seconds']:.1f} s "
            f"| {row['step_peak_bytes'] / 2**20:,.0f} MiB | {row['estimate_bytes'] / 2**20:,.0f} MiB |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    maker = commands.add_parser("make-model")
    maker.add_argument("folder", type=Path)
    for command in (maker, compare_parser := commands.add_parser("compare")):
        command.add_argument("--hidden", type=int, default=1024)
        command.add_argument("--layers", type=int, default=16)
        command.add_argument("--intermediate", type=int, default=4096)
        command.add_argument("--vocab", type=int, default=32000)
        command.add_argument("--shard-mb", type=int, default=120)
    compare_parser.add_argument("--nproc", type=int, default=2)
    compare_parser.add_argument("--model", type=Path, help="an existing model folder instead of a new random one")
    run = commands.add_parser("worker")
    run.add_argument("--model", type=Path, required=True)
    run.add_argument("--how", choices=["old", "new"], required=True)
    run.add_argument("--out", type=Path, required=True, help="results go to OUT-rank{R}.json")
    run.add_argument("--train-step", action="store_true")
    run.add_argument("--dump-shards", action="store_true")
    run.add_argument("--export", type=Path)
    run.add_argument("--export-shard-mb", type=int, default=100)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] or ["compare"])
    if args.command == "make-model":
        print(json.dumps(make_model(args.folder, args.hidden, args.layers, args.intermediate, args.vocab, args.shard_mb)))
    elif args.command == "worker":
        worker(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
