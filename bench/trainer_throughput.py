"""Kubetune's trainer against the transformers Trainer and TRL's SFTTrainer: real tokens per second.

One invocation runs every contender side by side: each repetition of each contender is its own process
(so peak memory and imports are its own), the repetitions are interleaved (rep 1: A B C D, rep 2: B C D A,
...) and the figures are medians over them, so a noisy shared machine hurts every contender alike.

    PYTHONSAFEPATH=1 .venv/bin/python bench/trainer_throughput.py --quick     # under 5 minutes on 2 cores
    PYTHONSAFEPATH=1 .venv/bin/python bench/trainer_throughput.py             # 1 epoch of 1,000 chats, 3 reps
    PYTHONSAFEPATH=1 .venv/bin/python bench/trainer_throughput.py --device cuda --preset gpu-1b
    PYTHONSAFEPATH=1 .venv/bin/python bench/trainer_throughput.py --profile   # where Kubetune's step time goes

What is the same for every contender:
- model: one random-weight Llama-architecture model saved once as a Hugging Face folder (CPU default:
  hidden 256, 7 layers, intermediate 512, 4 heads / 2 KV heads, tied embeddings, the tiny Llama-3 tokenizer
  of kubetune.trainer.tiny_models, vocabulary 640: 4.3M parameters); every contender loads that folder.
- data: --chats synthetic chats (the quickstart's generator, examples/data/generate.py, seeded), tokenized
  once with Kubetune's own chat tokenization (kubetune.trainer.data: Llama-3 template, labels on the
  assistant turns only, the first token of an example never a label); the transformers and TRL contenders
  get exactly these input_ids and labels, so the tokens and the loss mask are identical everywhere.
- context 512 (--context), the optimizer (AdamW, fused, betas 0.9/0.95, eps 1e-8, no weight decay, grad
  clipping at 1.0), the LR (1e-3, 5% linear warm-up, cosine to 0), seed 17, one optimizer step per batch
  (no gradient accumulation), fp32 on CPU / bf16 autocast or FSDP mixed precision with fp32 master weights
  on CUDA, --threads torch threads.
- real tokens per step: Kubetune takes --rows packed rows of --context tokens per step; the per-example
  contenders take ceil(chats / Kubetune's steps per epoch) chats per step, so every contender needs the
  same number of steps for an epoch and sees the same real tokens per step on average.

How each contender is configured:
- kubetune: the trainer's real entry point in-process, `kubetune.trainer.recipe.FineTuneRecipe` (setup(),
  then train(): its packed dataset, document attention, chunked loss, fused AdamW, sampler, per-step report
  and metrics file; on CPU one process trains the plain module, on CUDA FSDP2 with bf16 mixed precision
  over a group of one, as the trainer prepares it); global = micro batch = --rows packed rows
  (TrainingOptions), no MLflow, progress reports off. The timed steps end before the final checkpoint;
  the export (save()) is not run.
- hf_trainer: `transformers.Trainer`, the way its users write it: the model from `from_pretrained` (SDPA
  attention, --hf-attention), the tokenized chats as a list of {input_ids, labels}, `DataCollatorForSeq2Seq(tokenizer, padding=True,
  label_pad_token_id=-100)` (each batch padded to its longest chat, loss masked by -100 labels), default
  sampler (shuffled), `optim="adamw_torch_fused"` (its default), `lr_scheduler_type="cosine"`,
  `warmup_steps=0.05`, `use_cpu` / `bf16`, no saving, no reporting, `logging_steps=1`.
- trl_packing: TRL's `SFTTrainer` with `packing=True, packing_strategy="bfd"` (its default packing; it
  implies padding-free: each step's --rows packed rows of --context are flattened into one row with
  position_ids, which transformers' SDPA masking turns into a block-causal mask), --rows rows per step,
  `max_length=--context`, the pre-tokenized input_ids/labels dataset (SFTTrainer keeps a given "labels"
  column, so the assistant-only mask is exactly Kubetune's), as a `datasets.Dataset`; `bf16` and
  `gradient_checkpointing` set explicitly (SFTConfig defaults both to on), `pad_to_multiple_of=None`.
  Pre-tokenized rather than TRL's own path (a conversational dataset with `assistant_only_loss=True`, which
  swaps in its training template with generation markers and tokenizes itself), so that the loss tokens are
  the same ones for every contender.
- trl_padding_free: SFTTrainer with `padding_free=True` and no packing (`max_length=None`: the chats are
  already shorter than the context): each step's chats are concatenated into one row, no padding.

Timing: each process records the wall-clock end of every optimizer step (a TrainerCallback's on_step_end;
Kubetune: the recipe's per-step log) and the real (non-padding) tokens of every step (the batch the
collator built; Kubetune: StepResult.real_tokens). tokens/s = tokens of the steps after --warmup-steps /
the time between the end of step --warmup-steps and the end of the last step. Wall time: the process from
start to exit (imports, model and data set-up, training). Peak memory: the process's peak resident size
during training (VmHWM reset before training), and its rise over the resident size at that moment; on
CUDA torch.cuda.max_memory_allocated. Final loss: the last step's mean loss per loss token (one batch:
noisy), and the mean over the last quarter of the steps. Padding: the share of the positions the model ran
on that were padding (Kubetune: its packed rows' tail padding).

A contender whose packages are missing (hf_trainer: accelerate; TRL: trl, datasets; all in the `bench`
extra) is left out with a note, so the Kubetune side runs on a bare GPU stack.

MFU (CUDA): FLOPs per real token = 6N + 12·L·d·T (N parameters doing matmuls, L layers, d hidden size,
T the context), times tokens/s, over --peak-tflops (989.5: an H100 SXM's dense bf16 peak) per GPU.

The last two lines printed are `kubetune/hf_trainer tokens/s ratio: X` and `kubetune/trl tokens/s ratio: Y`,
Y against the faster of TRL's two modes. Record results in bench/RESULTS.md with the machine.
"""

import argparse
import importlib.util
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("kubetune", "hf_trainer", "trl_packing", "trl_padding_free")
H100_SXM_BF16_DENSE_TFLOPS = 989.5
PRESETS = {
    # ~4.3M parameters: the CPU comparison.
    "cpu-small": dict(hidden=256, layers=7, intermediate=512, heads=4, kv_heads=2),
    # Llama-3.2-1B's shape (with the tiny tokenizer's vocabulary): ~0.97B parameters.
    "gpu-1b": dict(hidden=2048, layers=16, intermediate=8192, heads=32, kv_heads=8),
}
SEED = 17


# ---- the figures ---------------------------------------------------------------------------------


def flops_per_token(matmul_parameters: int, layers: int, hidden: int, context: int) -> float:
    """Training FLOPs per token (PaLM's appendix B): 6N for the forward and backward matmuls of the weights,
    plus 12·L·d·T for attention's scores and values over a context of T tokens."""
    return 6 * matmul_parameters + 12 * layers * hidden * context


def model_flops_utilization(tokens_per_second: float, flops_per_token_: float, peak_tflops: float, devices: int = 1) -> float:
    """The share of the devices' peak that the model's own FLOPs reach (recomputation not counted)."""
    return tokens_per_second * flops_per_token_ / (peak_tflops * 1e12 * devices)


def matmul_parameters(total: int, vocab: int, hidden: int, tied_embeddings: bool) -> int:
    """Parameters that take part in a matmul: an untied input embedding is a lookup, not a matmul; a tied
    one is also the output projection and counts once."""
    return total if tied_embeddings else total - vocab * hidden


def throughput(step_ends: list[float], step_tokens: list[int], warmup_steps: int) -> float:
    """Real tokens per second over the steps after the first `warmup_steps` (the timer starts at the end of
    step `warmup_steps`)."""
    if len(step_ends) <= warmup_steps or warmup_steps < 1:
        raise ValueError(f"need more than {warmup_steps} timed steps (and at least one warm-up step), got {len(step_ends)}")
    return sum(step_tokens[warmup_steps:len(step_ends)]) / (step_ends[-1] - step_ends[warmup_steps - 1])


def interleaved(contenders: list[str], repetitions: int) -> list[tuple[int, str]]:
    """(repetition, contender) in run order: each repetition starts one contender later than the last."""
    order = []
    for rep in range(repetitions):
        shift = rep % len(contenders)
        order += [(rep, name) for name in contenders[shift:] + contenders[:shift]]
    return order


# ---- shared set-up (the parent, once) -------------------------------------------------------------


def write_chats(path: Path, count: int) -> Path:
    spec = importlib.util.spec_from_file_location("quickstart_data", REPO_ROOT / "examples/data/generate.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    rng = random.Random(SEED)
    generator.write_jsonl(path, [generator.conversation(rng) for _ in range(count)])
    return path


def save_model(folder: Path, sizes: dict, context: int) -> dict:
    import torch
    import transformers

    from kubetune.trainer.tiny_models import build_tokenizer

    tokenizer = build_tokenizer("llama")
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=sizes["hidden"], intermediate_size=sizes["intermediate"],
        num_hidden_layers=sizes["layers"], num_attention_heads=sizes["heads"], num_key_value_heads=sizes["kv_heads"],
        max_position_embeddings=max(2048, context), bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    total = sum(p.numel() for p in model.parameters())
    return {
        "parameters": total, "layers": sizes["layers"], "hidden": sizes["hidden"],
        "matmul_parameters": matmul_parameters(total, len(tokenizer), sizes["hidden"], tied_embeddings=True),
    }


def tokenized_chats(model_folder: Path, data: Path, context: int) -> tuple[list[list[int]], list[list[int]]]:
    """Kubetune's own chat tokenization (labels on assistant tokens), cut to the context like its packing does."""
    from transformers import AutoTokenizer

    from kubetune.api.spec import TaskType
    from kubetune.trainer.data import DataConfig, load_and_validate
    from kubetune.trainer.data.formatting import tokenize_examples
    from kubetune.trainer.data.packing import fit_to_context

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    examples = load_and_validate(DataConfig(str(data), TaskType.CHAT_COMPLETION, context))
    fitted, _, _ = fit_to_context(tokenize_examples(examples, tokenizer, TaskType.CHAT_COMPLETION), context)
    return [e.input_ids for e in fitted], [e.labels for e in fitted]


def packed_rows(model_folder: Path, data: Path, context: int) -> int:
    """How many rows of `context` tokens Kubetune packs the data into."""
    from transformers import AutoTokenizer

    from kubetune.api.spec import TaskType
    from kubetune.trainer.data import DataConfig, build_packed_dataset

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    return len(build_packed_dataset(DataConfig(str(data), TaskType.CHAT_COMPLETION, context), tokenizer))


# What each contender imports beyond Kubetune's trainer stack (a GPU machine's preinstalled stack may lack them).
NEEDS = {"kubetune": (), "hf_trainer": ("accelerate",), "trl_packing": ("trl", "datasets"), "trl_padding_free": ("trl", "datasets")}


def available(names: list[str]) -> list[str]:
    """The contenders whose packages are installed; says which are left out and why."""
    kept = []
    for name in names:
        missing = [package for package in NEEDS[name] if importlib.util.find_spec(package) is None]
        if missing:
            print(f"{name}: left out, {', '.join(missing)} not installed (pip install -c constraints.txt -e '.[bench]')")
        else:
            kept.append(name)
    return kept


def contenders():
    """bench/throughput_contenders.py (the workers), loaded by path: PYTHONSAFEPATH keeps bench/ off sys.path."""
    spec = importlib.util.spec_from_file_location("throughput_contenders", Path(__file__).with_name("throughput_contenders.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the driver ----------------------------------------------------------------------------------


def run_contender(name: str, rep: int, plan: dict, workdir: Path) -> dict:
    out = workdir / f"{name}-{rep}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "worker", name, "--plan", str(workdir / "plan.json"), "--out", str(out)]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONSAFEPATH": "1"})
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{name} (rep {rep}) exited {completed.returncode}:\n{completed.stderr[-4000:]}")
    raw = json.loads(out.read_text())
    ends, tokens, losses = raw.pop("step_ends"), raw.pop("step_tokens"), raw.pop("losses")
    return {
        **raw,
        "repetition": rep,
        "tokens_per_second": round(throughput(ends, tokens, plan["warmup_steps"]), 1),
        "train_seconds": ends[-1],
        "wall_seconds": round(wall, 2),
        "tokens_per_step": round(sum(tokens) / len(tokens)),
        "padding_share": round(1 - sum(tokens) / raw.pop("computed_tokens"), 4),
        "steps": len(ends),
        "final_loss": losses[-1],
        "last_quarter_loss": round(statistics.mean(losses[-max(1, len(losses) // 4):]), 4),
    }


def summarize(results: list[dict], plan: dict) -> dict[str, dict]:
    summary = {}
    for name in plan["contenders"]:
        runs = [r for r in results if r["contender"] == name]
        figures = {key: statistics.median(r[key] for r in runs) for key in
                   ("tokens_per_second", "train_seconds", "wall_seconds", "peak_memory_mib", "memory_rise_mib", "final_loss",
                    "last_quarter_loss", "padding_share")}
        figures["tokens_per_step"] = round(statistics.median(r["tokens_per_step"] for r in runs))
        figures["steps"] = runs[0]["steps"]
        figures["runs"] = [round(r["tokens_per_second"]) for r in runs]
        if plan["device"] == "cuda":
            fpt = flops_per_token(plan["model"]["matmul_parameters"], plan["model"]["layers"], plan["model"]["hidden"], plan["context"])
            figures["mfu"] = model_flops_utilization(figures["tokens_per_second"], fpt, plan["peak_tflops"])
        summary[name] = figures
    return summary


def print_summary(summary: dict[str, dict], plan: dict) -> None:
    memory = "peak GPU MiB" if plan["device"] == "cuda" else "peak RSS MiB (rise)"
    print(f"\nmedians of {plan['repetitions']} interleaved repetitions; {plan['model']['parameters']:,} parameters, "
          f"context {plan['context']}, {plan['chats']} chats, device {plan['device']}")
    print(f"{'contender':18} {'tokens/s':>10} {'tok/step':>8} {'padding':>7} {'steps':>5} {'train s':>8} {'wall s':>7} {memory:>20} "
          f"{'final loss':>10} {'last 1/4':>8}"
          + ("   MFU" if plan["device"] == "cuda" else "") + "   tokens/s of each run")
    for name, f in summary.items():
        mem = f"{f['peak_memory_mib']:.0f}" + ("" if plan["device"] == "cuda" else f" ({f['memory_rise_mib']:.0f})")
        mfu = f" {100 * f['mfu']:5.1f}%" if "mfu" in f else ""
        print(f"{name:18} {f['tokens_per_second']:10.1f} {f['tokens_per_step']:8d} {100 * f['padding_share']:6.1f}% {f['steps']:5d} "
              f"{f['train_seconds']:8.1f} {f['wall_seconds']:7.1f} {mem:>20} {f['final_loss']:10.4f} {f['last_quarter_loss']:8.4f}{mfu}"
              f"   {f['runs']}")
    if "kubetune" not in summary:
        return
    ours = summary["kubetune"]["tokens_per_second"]
    trl = [n for n in ("trl_packing", "trl_padding_free") if n in summary]
    for name in trl:
        print(f"kubetune/{name} tokens/s ratio: {ours / summary[name]['tokens_per_second']:.2f}")
    if "hf_trainer" in summary:
        print(f"kubetune/hf_trainer tokens/s ratio: {ours / summary['hf_trainer']['tokens_per_second']:.2f}")
    if trl:
        best = max(summary[n]["tokens_per_second"] for n in trl)
        print(f"kubetune/trl tokens/s ratio: {ours / best:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help="one run of one contender (the driver starts these)")
    worker.add_argument("contender", choices=CONTENDERS)
    worker.add_argument("--plan", type=Path, required=True)
    worker.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="fewer steps and 2 repetitions: under 5 minutes on 2 cores")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="model shape (default: cpu-small; cuda: gpu-1b)")
    parser.add_argument("--context", type=int, default=None, help="default 512 on CPU, 4096 on CUDA")
    parser.add_argument("--chats", type=int, default=None, help="default 1,000 on CPU, 20,000 on CUDA")
    parser.add_argument("--rows", type=int, default=None, help="packed rows per step (default 4 on CPU, 8 on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: one epoch; --quick: 6)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps left out of tokens/s")
    parser.add_argument("--repetitions", type=int, default=None, help="default 3 (--quick: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process (the shared 2-core machine: 1)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                        help="every contender (default: Kubetune's, on for CUDA, off on CPU)")
    parser.add_argument("--hf-attention", default="sdpa",
                        help="attn_implementation of the transformers and TRL contenders (on a GPU with flash-attn: flash_attention_2)")
    parser.add_argument("--peak-tflops", type=float, default=H100_SXM_BF16_DENSE_TFLOPS, help="per-GPU dense bf16 peak for MFU")
    parser.add_argument("--profile", action="store_true", help="profile Kubetune's step loop instead (cProfile and torch.profiler)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the model, data and results here")
    args = parser.parse_args()
    if args.command == "worker":
        plan = json.loads(args.plan.read_text())
        args.out.write_text(json.dumps(contenders().run_worker(args.contender, plan)))
        return

    cuda = args.device == "cuda"
    sizes = PRESETS[args.preset or ("gpu-1b" if cuda else "cpu-small")]
    context = args.context or (4096 if cuda else 512)
    chats = args.chats or (20_000 if cuda else 1_000)
    rows = args.rows or (8 if cuda else 4)
    repetitions = args.repetitions or (2 if args.quick else 3)
    steps = args.steps or (6 if args.quick else None)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kt-trainer-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    data = write_chats(workdir / "chats.jsonl", chats)
    model_folder = workdir / "model"
    model = save_model(model_folder, sizes, context)
    epoch_steps = math.ceil(packed_rows(model_folder, data, context) / rows)
    ids, labels = tokenized_chats(model_folder, data, context)
    (workdir / "tokens.json").write_text(json.dumps({"input_ids": ids, "labels": labels}))
    plan = {
        "device": args.device, "context": context, "chats": chats, "rows": rows, "threads": args.threads,
        "steps": min(steps or epoch_steps, epoch_steps), "epoch_steps": epoch_steps,
        "chats_per_step": math.ceil(len(ids) / epoch_steps), "warmup_steps": args.warmup_steps,
        "repetitions": repetitions, "contenders": available(args.contenders.split(",")), "model": model,
        "hf_attention": args.hf_attention,
        "model_folder": str(model_folder), "data": str(data), "tokens": str(workdir / "tokens.json"),
        "workdir": str(workdir), "peak_tflops": args.peak_tflops,
        # One setting for every contender; by default Kubetune's (on for CUDA, off on CPU).
        "activation_checkpointing": cuda if args.activation_checkpointing is None else args.activation_checkpointing,
        "real_tokens": sum(map(len, ids)), "loss_tokens": sum(sum(t != -100 for t in row) for row in labels),
    }
    (workdir / "plan.json").write_text(json.dumps(plan))
    print(json.dumps({k: v for k, v in plan.items() if k not in ("tokens",)}), flush=True)
    if args.profile:
        contenders().profile_kubetune(plan)
        return

    results = []
    for rep, name in interleaved(plan["contenders"], repetitions):
        result = run_contender(name, rep, plan, workdir)
        results.append(result)
        print(json.dumps(result), flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; workdir {workdir}")
    print_summary(summarize(results, plan), plan)


if __name__ == "__main__":
    main()
