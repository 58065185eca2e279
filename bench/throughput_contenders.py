"""The contenders of bench/trainer_throughput.py, one process per run: Kubetune's recipe, the transformers
Trainer and TRL's SFTTrainer, each timed per optimizer step. How each is configured: that script's docstring.

Each worker gets the plan (model folder, data, tokens, sizes) the driver wrote and returns one dict: the end of
every optimizer step (seconds since training started), its real tokens, the tokens it computed (padding
included), its loss and the peak memory; the driver turns these into tokens per second.
"""

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

SEED = 17
LEARNING_RATE = 1e-3
WARMUP_FRACTION = 0.05


def run_worker(contender: str, plan: dict) -> dict:
    import torch

    torch.set_num_threads(plan["threads"])
    run = {"kubetune": run_kubetune, "hf_trainer": run_hf_trainer, "trl_packing": run_trl, "trl_padding_free": run_trl}[contender]
    clock = StepClock()
    memory = MemoryWatch(plan["device"])
    losses = run(contender, plan, clock, memory)
    return {
        "contender": contender,
        "step_ends": [round(end - clock.started, 4) for end in clock.ends],  # seconds since training started
        "step_tokens": clock.tokens,
        "computed_tokens": sum(clock.computed),
        "losses": [round(loss, 4) for loss in losses],
        **memory.figures(),
    }


class StepClock:
    """When each optimizer step ended and how many real tokens it trained on."""

    def __init__(self):
        self.started = time.perf_counter()
        self.ends: list[float] = []
        self.tokens: list[int] = []
        self.computed: list[int] = []  # positions the model ran on in each step, padding included
        # Per batch the collator built (transformers, TRL), in order: real tokens, positions. The data loader
        # may build a batch ahead of the step, so these are read by the step's index.
        self.batch_tokens: list[int] = []
        self.batch_computed: list[int] = []

    def start(self) -> None:
        self.started = time.perf_counter()

    def step_ended(self, tokens: int | None = None, computed: int | None = None) -> None:
        self.ends.append(time.perf_counter())
        step = len(self.ends) - 1
        self.tokens.append(tokens if tokens is not None else self.batch_tokens[step])
        self.computed.append(computed if computed is not None else self.batch_computed[step])


class MemoryWatch:
    """Peak memory during training: resident host memory (VmHWM reset at the start), or CUDA's allocator peak."""

    def __init__(self, device: str):
        self.device = device

    def start(self) -> None:
        import torch

        from kubetune.trainer import host_memory

        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        host_memory.reset_peak()
        self.before = host_memory.resident_bytes() or 0

    def figures(self) -> dict:
        import torch

        from kubetune.trainer import host_memory

        if self.device == "cuda":
            peak = torch.cuda.max_memory_allocated()
            return {"peak_memory_mib": round(peak / 2**20, 1), "memory_rise_mib": 0.0}
        peak = host_memory.peak_resident_bytes() or 0
        return {"peak_memory_mib": round(peak / 2**20, 1), "memory_rise_mib": round((peak - self.before) / 2**20, 1)}


# ---- Kubetune: the trainer's own recipe, in-process ---------------------------------------------


def run_kubetune(contender: str, plan: dict, clock: StepClock, memory: MemoryWatch, around_train=None) -> list[float]:
    from kubetune.api.spec import FineTuneRunSpec
    from kubetune.api.trainer_config import RunIdentity, TrainerConfig, TrainerPaths, TrainingOptions
    from kubetune.trainer.recipe import FineTuneRecipe

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    run_dir = Path(tempfile.mkdtemp(prefix="kubetune-", dir=plan["workdir"]))
    config = TrainerConfig(
        run=RunIdentity(name="bench"),
        spec=FineTuneRunSpec.model_validate({
            "model": plan["model_folder"], "trainDataPath": plan["data"], "registerTo": "main.default.bench",
            "taskType": "CHAT_COMPLETION", "trainingDuration": f"{plan['steps']}ba", "learningRate": LEARNING_RATE,
            "contextLength": plan["context"],
        }),
        paths=TrainerPaths(checkpoint_root=run_dir / "checkpoints", output_root=run_dir / "outputs",
                           termination_log=run_dir / "termination-log"),
        training=TrainingOptions(
            global_batch_size=plan["rows"], micro_batch_size=plan["rows"], device=plan["device"], seed=SEED,
            warmup_fraction=WARMUP_FRACTION, min_lr_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0,
            activation_checkpointing=plan["activation_checkpointing"],
        ),
    )
    losses: list[float] = []
    rows: list[int] = []

    class TimedRecipe(FineTuneRecipe):
        def _train_one_step(self, position):
            rows.append(sum(len(indices) for indices in self.sampler.micro_batches(position)))  # the last may be partial
            return super()._train_one_step(position)

        def _log_step(self, result, seconds):
            # Before the step's logging, as the callbacks below; every packed row is `context` long.
            clock.step_ended(result.real_tokens, rows[-1] * plan["context"])
            losses.append(result.loss)
            super()._log_step(result, seconds)

    recipe = TimedRecipe(config)
    try:
        recipe.setup()
        synchronize(plan["device"])
        memory.start()
        clock.start()
        with around_train or contextlib.nullcontext():
            recipe.train()
    finally:
        recipe.cleanup("FINISHED")
    return losses


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# Where a step's time goes: (file suffix, function) whose cumulative time cProfile reports, in step order.
STEP_PHASES = {
    "data: load_micro_batch (collate, bounds, to device)": ("trainer/steps.py", "load_micro_batch"),
    "forward + chunked loss: forward_summed_loss": ("trainer/steps.py", "forward_summed_loss"),
    "  of which attention: document_attention": ("trainer/attention.py", "document_attention"),
    "  of which loss: summed_token_loss (forward part)": ("trainer/loss.py", "summed_token_loss"),
    "backward: Tensor.backward": ("torch/_tensor.py", "backward"),
    "grad-norm clipping: _clip": ("trainer/steps.py", "_clip"),
    "optimizer: AdamW.step (fused)": ("torch/optim/adam.py", "step"),
    "zero_grad": ("torch/optim/optimizer.py", "zero_grad"),
    "LR scheduler step": ("torch/optim/lr_scheduler.py", "step"),
    "SIGTERM agreement: StopOnSigterm.agreed": ("trainer/preemption.py", "agreed"),
    "step bookkeeping: _log_step (metrics file, report)": ("trainer/recipe.py", "_log_step"),
}


def profile_kubetune(plan: dict) -> None:
    """Kubetune's run under cProfile: the time of each phase of the step loop, then the costliest functions."""
    import cProfile
    import pstats

    import torch

    torch.set_num_threads(plan["threads"])
    clock, memory, profiler = StepClock(), MemoryWatch(plan["device"]), cProfile.Profile()
    run_kubetune("kubetune", plan, clock, memory, around_train=profiler)
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    steps_seconds = clock.ends[-1] - clock.started
    print(f"\nKubetune under cProfile: {len(clock.ends)} steps, {sum(clock.tokens) / steps_seconds:.0f} real tokens/s "
          f"(profiled), train() {total:.1f} s")
    for phase, (suffix, function) in STEP_PHASES.items():
        seconds = sum(row[3] for (path, _, name), row in stats.stats.items() if path.endswith(suffix) and name == function)
        print(f"  {phase:55} {seconds:8.3f} s  {100 * seconds / total:5.1f}%")
    print("\nthe costliest functions by own time:")
    stats.sort_stats("tottime").print_stats(25)


# ---- transformers Trainer and TRL SFTTrainer ----------------------------------------------------


def training_arguments(plan: dict, output_dir: Path, batch_size: int) -> dict:
    """What the transformers and TRL contenders share: Kubetune's optimizer, schedule and precision."""
    cuda = plan["device"] == "cuda"
    return dict(
        output_dir=str(output_dir), per_device_train_batch_size=batch_size, gradient_accumulation_steps=1,
        max_steps=plan["steps"], learning_rate=LEARNING_RATE, lr_scheduler_type="cosine", warmup_steps=WARMUP_FRACTION,
        optim="adamw_torch_fused", adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8, weight_decay=0.0, max_grad_norm=1.0,
        use_cpu=not cuda, bf16=cuda, gradient_checkpointing=bool(plan["activation_checkpointing"]),
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=SEED, data_seed=SEED,
        dataloader_num_workers=0,
    )


def load_hf(plan: dict):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(plan["model_folder"])
    model = AutoModelForCausalLM.from_pretrained(plan["model_folder"], dtype=torch.float32, attn_implementation=plan["hf_attention"])
    return tokenizer, model


def tokens(plan: dict) -> dict[str, list[list[int]]]:
    return json.loads(Path(plan["tokens"]).read_text())


def run_hf_trainer(contender: str, plan: dict, clock: StepClock, memory: MemoryWatch) -> list[float]:
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    tokenizer, model = load_hf(plan)
    data = tokens(plan)
    dataset = [{"input_ids": ids, "labels": labels} for ids, labels in zip(data["input_ids"], data["labels"])]
    output = Path(tempfile.mkdtemp(prefix="hf-", dir=plan["workdir"]))
    args = TrainingArguments(**training_arguments(plan, output, plan["chats_per_step"]))
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=CountingCollator(collator, clock),
                      processing_class=tokenizer, callbacks=[clock_callback(clock, plan["device"])])
    return timed_train(trainer, plan, memory, clock)


def run_trl(contender: str, plan: dict, clock: StepClock, memory: MemoryWatch) -> list[float]:
    import datasets
    from trl import SFTConfig, SFTTrainer

    tokenizer, model = load_hf(plan)
    dataset = datasets.Dataset.from_dict(tokens(plan))
    output = Path(tempfile.mkdtemp(prefix="trl-", dir=plan["workdir"]))
    if contender == "trl_packing":
        mode = dict(packing=True, packing_strategy="bfd", max_length=plan["context"])
        batch = plan["rows"]
    else:
        mode = dict(padding_free=True, max_length=None)
        batch = plan["chats_per_step"]
    config = SFTConfig(**training_arguments(plan, output, batch), **mode, pad_to_multiple_of=None, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[clock_callback(clock, plan["device"])])
    trainer.data_collator = CountingCollator(trainer.data_collator, clock)  # padding-free refuses a custom one
    return timed_train(trainer, plan, memory, clock)


def timed_train(trainer, plan: dict, memory: MemoryWatch, clock: StepClock) -> list[float]:
    synchronize(plan["device"])
    memory.start()
    clock.start()
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


class CountingCollator:
    """The contender's own collator; records the real (non-padding) tokens of every batch it builds."""

    def __init__(self, collator, clock: StepClock):
        self.collator, self.clock = collator, clock

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch.get("attention_mask")
        self.clock.batch_tokens.append(int(mask.sum()) if mask is not None else batch["input_ids"].numel())
        self.clock.batch_computed.append(batch["input_ids"].numel())
        return batch


def clock_callback(clock: StepClock, device: str):
    from transformers import TrainerCallback

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            clock.step_ended()

    return StepEnd()
