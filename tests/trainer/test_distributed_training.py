"""Real torchrun runs of the trainer on CPU (gloo, FSDP2): two nodes match one, a killed run resumes exactly.

Every run trains the same tiny Llama for 20 optimizer steps of 4 packed sequences
(context 128), evaluates and generates at checkpoints every 5 steps, and exports.
"""

import json
import signal
from pathlib import Path

import pytest
import torch

from helpers.mlflow_server import free_port
from helpers.torchrun import (
    kill_group, losses_by_step, metric_by_step, node_command, run_nodes, run_standalone, standalone_command, start, tail, wait_for,
)
from kubetune.api.failures import EndedAs, read_termination_message
from kubetune.api.spec import FineTuneRunSpec
from kubetune.api.checkpoints import COMPLETE_MARKER, PROGRESS_FILE, list_checkpoints, parse_checkpoint_name, point_latest
from kubetune.api.trainer_config import ProgressTarget, RunIdentity, TrainerConfig, TrainerPaths, TrainingOptions

pytestmark = pytest.mark.trainer

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = 20


def _subset(source: Path, target: Path, lines: int) -> Path:
    target.write_text("".join(source.read_text().splitlines(keepends=True)[:lines]))
    return target


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    _subset(REPO_ROOT / "examples/data/train.jsonl", folder / "train.jsonl", 48)
    _subset(REPO_ROOT / "examples/data/eval.jsonl", folder / "eval.jsonl", 6)
    return folder


def assert_same_curve(reference: TrainerConfig, run: TrainerConfig) -> None:
    """The same train loss at every step as the reference run, to fp32 rounding."""
    expected, got = losses_by_step(reference.metrics_file), losses_by_step(run.metrics_file)
    assert sorted(got) == sorted(expected)
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-5), f"step {step}"


def kill_after_checkpoint(config_path: Path, log_path: Path, step: int, timeout: float, nproc: int = 1):
    """Start a torchrun run and SIGKILL it with its workers once `latest` names the checkpoint of `step`."""
    config = TrainerConfig.load(config_path)
    process = start(standalone_command(config_path, nproc=nproc), log_path)
    latest = config.run_checkpoint_dir / "latest"
    wait_for(lambda: latest.exists() and latest.read_text().strip().endswith(f"-ba{step}"), timeout, process, log_path)
    kill_group(process)
    return process


def write_config(workdir: Path, model_dir: Path, data_dir: Path, name: str, **spec_overrides) -> Path:
    spec = FineTuneRunSpec.parse({
        "model": str(model_dir),
        "trainDataPath": str(data_dir / "train.jsonl"),
        "evalDataPath": str(data_dir / "eval.jsonl"),
        "evalPrompts": ["What is the capital of Poland?"],
        "registerTo": "main.tests",
        "trainingDuration": f"{STEPS}ba",
        "contextLength": 128,
        "learningRate": "3e-3",
        **spec_overrides,
    })
    config = TrainerConfig(
        run=RunIdentity(namespace="tests", name=name, uid=f"uid-{name}"),
        spec=spec,
        paths=TrainerPaths(checkpoint_root=workdir / "checkpoints", output_root=workdir / "outputs"),
        progress=ProgressTarget(kind="file", path=workdir / name / "progress.json", min_interval_s=0),
        training=TrainingOptions(global_batch_size=4, micro_batch_size=1, checkpoint_every_steps=5, warmup_fraction=0.1, device="cpu"),
    )
    return config.write(workdir / f"{name}.json")


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, tiny_model_dir, data_dir) -> TrainerConfig:
    """The reference: one process trains all 20 steps, uninterrupted."""
    workdir = tmp_path_factory.mktemp("single")
    config_path = write_config(workdir, tiny_model_dir("llama"), data_dir, "single")
    code = run_standalone(config_path, workdir / "single.log", timeout=240)
    assert code == 0, tail(workdir / "single.log")
    return TrainerConfig.load(config_path)


def test_single_run_writes_checkpoints_reports_and_a_loadable_export(single_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = [p.name for p in list_checkpoints(single_run.run_checkpoint_dir)]
    assert [parse_checkpoint_name(n)[1] for n in names] == [5, 10, 15, 20], names
    epochs = [parse_checkpoint_name(n)[0] for n in names]
    assert epochs == sorted(epochs) and epochs[-1] >= 1  # 20 steps span more than one epoch of this data
    assert (single_run.run_checkpoint_dir / "latest").read_text().strip().endswith("-ba20")

    report = json.loads(single_run.progress.path.read_text())
    assert report["stage"] == "TRAIN_FINISHED"
    assert report["step"] == report["totalSteps"] == STEPS
    assert [c["step"] for c in report["checkpoints"]] == [5, 10, 15, 20]
    assert report["evalLoss"] > 0 and report["exportUri"] == str(single_run.export_dir)

    losses = losses_by_step(single_run.metrics_file)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses[STEPS] < losses[1]  # it learns

    records = [json.loads(line) for line in single_run.metrics_file.read_text().splitlines()]
    generations = [r for r in records if r["kind"] == "generations"]
    assert len(generations) == 4 and {"prompt", "generation"} <= set(generations[-1]["rows"][0])

    exported = AutoModelForCausalLM.from_pretrained(single_run.export_dir)
    base = AutoModelForCausalLM.from_pretrained(single_run.spec.model)
    tokenizer = AutoTokenizer.from_pretrained(single_run.export_dir)
    assert tokenizer.chat_template
    weights = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(exported.state_dict()[weights], base.state_dict()[weights])
    assert exported.generate(torch.tensor([[tokenizer.bos_token_id]]), max_new_tokens=3, do_sample=False).shape[1] == 4


def test_two_nodes_follow_the_single_process_loss_curve(single_run, tmp_path, tiny_model_dir, data_dir):
    """Two torchrun "nodes" (c10d rendezvous on 127.0.0.1, one gloo process each) split every global batch.

    The loss is normalised by the global number of loss tokens, so both runs compute
    the same gradient; what differs is only the order of fp32 sums (FSDP's
    reduce-scatter adds the two halves; one process adds micro-batch by micro-batch).
    Those rounding differences (measured: at most 5e-8 relative over the 20 steps)
    pass through AdamW's updates, so the curves must agree to 1e-5 relative: 200×
    that margin, yet far below the loss's own movement (about 2% per step here),
    so a wrong normalisation or a rank training on the wrong sequences fails it.
    """
    config_path = write_config(tmp_path, tiny_model_dir("llama"), data_dir, "two-nodes")
    codes = run_nodes(config_path, tmp_path, nnodes=2, timeout=300)
    assert codes == [0, 0], tail(tmp_path / "node0.log") + tail(tmp_path / "node1.log")

    two_nodes = TrainerConfig.load(config_path)
    assert_same_curve(single_run, two_nodes)
    # AdamW's update barely depends on the gradient's scale, so the curve alone cannot see a loss scaled
    # wrongly across ranks (without the world size, half the gradient): the gradient's norm can.
    single_norms, split_norms = metric_by_step(single_run.metrics_file, "grad_norm"), metric_by_step(two_nodes.metrics_file, "grad_norm")
    assert sorted(split_norms) == sorted(single_norms) == sorted(losses_by_step(single_run.metrics_file))
    for step in single_norms:
        assert split_norms[step] == pytest.approx(single_norms[step], rel=1e-4), f"step {step}"
    assert json.loads(two_nodes.progress.path.read_text())["stage"] == "TRAIN_FINISHED"


def test_a_killed_run_resumes_from_its_latest_checkpoint_on_the_same_curve(single_run, tmp_path, tiny_model_dir, data_dir):
    config_path = write_config(tmp_path, tiny_model_dir("llama"), data_dir, "killed")
    config = TrainerConfig.load(config_path)
    log_path = tmp_path / "killed.log"

    process = kill_after_checkpoint(config_path, log_path, step=5, timeout=240)  # a lost node: no chance to clean up
    assert process.returncode == -signal.SIGKILL
    killed_at = max(losses_by_step(config.metrics_file))
    assert killed_at < STEPS and not config.export_dir.exists()

    code = run_standalone(config_path, tmp_path / "resumed.log", timeout=240)
    assert code == 0, tail(tmp_path / "resumed.log")

    log = (tmp_path / "resumed.log").read_text()
    assert "resumed from" in log and "at step 5" in log  # not from scratch
    # Same process count, same data order, exact optimizer and RNG state: only
    # nondeterminism in CPU kernels could differ, and there is none at this size.
    assert_same_curve(single_run, config)
    assert json.loads(config.progress.path.read_text())["stage"] == "TRAIN_FINISHED"


def test_sigterm_mid_epoch_checkpoints_the_step_under_way_and_the_run_resumes_on_the_same_curve(
    single_run, tmp_path, tiny_model_dir, data_dir
):
    """One of two nodes is preempted: Kubernetes sends its torchrun SIGTERM, torchrun passes it to its worker.
    The other node never sees a signal, yet both ranks finish the step under way, agree to stop at the same
    step, write a complete checkpoint of it (no step lost, though the last scheduled checkpoint is steps
    behind), leave the preempted mark for the operator and exit."""
    config_path = write_config(tmp_path, tiny_model_dir("llama"), data_dir, "preempted")
    config = TrainerConfig.load(config_path)
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")  # what the kubelet mounts into every container
    config = config.model_copy(update={"paths": config.paths.model_copy(update={"termination_log": termination_log})})
    config.write(config_path)

    port = free_port()
    nodes = [start(node_command(config_path, rank, 2, port, f"test-{port}"), tmp_path / f"node{rank}.log") for rank in (0, 1)]
    log_path = tmp_path / "node0.log"
    wait_for(lambda: config.metrics_file.exists() and max(losses_by_step(config.metrics_file), default=0) >= 7, 300, nodes[0], log_path)
    nodes[1].send_signal(signal.SIGTERM)  # to one node's torchrun, as the kubelet signals a container's first process
    signalled_at = max(losses_by_step(config.metrics_file))
    assert [node.wait(timeout=120) != 0 for node in nodes] == [True, True], tail(log_path) + tail(tmp_path / "node1.log")

    trained = max(losses_by_step(config.metrics_file))
    latest = (config.run_checkpoint_dir / "latest").read_text().strip()
    assert parse_checkpoint_name(latest)[1] == trained >= signalled_at, tail(log_path)  # every trained step is saved
    ended_as, message = read_termination_message(termination_log.read_text())
    assert ended_as is EndedAs.PREEMPTED and f"after step {trained}" in message, termination_log.read_text()
    report = json.loads(config.progress.path.read_text())
    assert report["stage"] == "PREEMPTED" and report["step"] == trained
    assert not config.export_dir.exists()

    code = run_standalone(config_path, tmp_path / "resumed.log", nproc=2, timeout=300)
    assert code == 0, tail(tmp_path / "resumed.log")
    assert f"at step {trained}" in (tmp_path / "resumed.log").read_text()  # resumed from the step it stopped at
    assert_same_curve(single_run, config)


@pytest.mark.faults
def test_a_crash_mid_checkpoint_leaves_the_previous_checkpoint_which_the_resume_uses(single_run, tmp_path, tiny_model_dir, data_dir):
    """A process dying part-way through a save leaves a folder without its COMPLETE marker, and `latest` still
    naming the checkpoint before (it moves only after the marker). That state is made from a real run killed
    just after its step-10 checkpoint, by tearing that checkpoint the way the crash would have left it: the
    save itself takes milliseconds, too short to hit with a signal reliably."""
    config_path = write_config(tmp_path, tiny_model_dir("llama"), data_dir, "torn")
    config = TrainerConfig.load(config_path)
    log_path = tmp_path / "torn.log"
    kill_after_checkpoint(config_path, log_path, step=10, timeout=240)
    [fifth, tenth] = [p for p in list_checkpoints(config.run_checkpoint_dir) if parse_checkpoint_name(p.name)[1] in (5, 10)]
    (tenth / COMPLETE_MARKER).unlink()
    (tenth / PROGRESS_FILE).unlink()
    next(tenth.glob("*.distcp")).write_bytes(b"")  # a shard half-written
    point_latest(config.run_checkpoint_dir, fifth.name)

    code = run_standalone(config_path, tmp_path / "resumed.log", timeout=240)
    assert code == 0, tail(tmp_path / "resumed.log")
    assert "at step 5" in (tmp_path / "resumed.log").read_text()  # from the last complete checkpoint
    assert (tenth / COMPLETE_MARKER).exists()  # the torn folder was written again, whole
    assert_same_curve(single_run, config)


@pytest.mark.slow
def test_four_processes_follow_the_single_process_loss_curve(single_run, tmp_path, tiny_model_dir, data_dir):
    """Four ranks (one sequence each per step) on the same curve as one rank, for the reason given above."""
    config_path = write_config(tmp_path, tiny_model_dir("llama"), data_dir, "four")
    code = run_standalone(config_path, tmp_path / "four.log", nproc=4, timeout=600)
    assert code == 0, tail(tmp_path / "four.log")
    assert_same_curve(single_run, TrainerConfig.load(config_path))


@pytest.mark.slow
def test_a_run_killed_on_two_processes_resumes_on_one(single_run, tmp_path, tiny_model_dir, data_dir):
    """A preempted two-GPU run that comes back on one: the sharded checkpoint is resharded on load, and the
    data order does not depend on the number of ranks, so the curve continues as if nothing happened."""
    config_path = write_config(tmp_path, tiny_model_dir("llama"), data_dir, "reshard")
    config = TrainerConfig.load(config_path)
    log_path = tmp_path / "two.log"
    process = kill_after_checkpoint(config_path, log_path, step=5, timeout=300, nproc=2)
    assert process.returncode == -signal.SIGKILL

    code = run_standalone(config_path, tmp_path / "one.log", nproc=1, timeout=300)
    assert code == 0, tail(tmp_path / "one.log")
    assert "resumed from" in (tmp_path / "one.log").read_text()
    assert_same_curve(single_run, config)
