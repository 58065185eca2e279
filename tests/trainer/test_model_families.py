"""The recipe in this process (world size 1 over gloo, the FSDP2 code path) on each model family,
and a run that starts from another run's checkpoint (customWeightsPath)."""

import json

import pytest
import torch

from helpers.mlflow_server import free_port
from helpers.torchrun import losses_by_step
from kubetune.api.spec import FineTuneRunSpec
from kubetune.trainer.config import RunIdentity, TrainerConfig, TrainerPaths, TrainingOptions
from kubetune.trainer.recipe import run

pytestmark = pytest.mark.trainer

QUESTIONS = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(3, 9) for b in (2, 5)]


@pytest.fixture
def single_process_group(monkeypatch):
    """What torchrun would set for a one-process run."""
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)


def _config(tmp_path, model_dir, name: str, **spec) -> TrainerConfig:
    data = tmp_path / "train.jsonl"  # user/assistant only: Mistral's template has no system role
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n" for q, a in QUESTIONS))
    return TrainerConfig(
        run=RunIdentity(namespace="tests", name=name, uid=name),
        spec=FineTuneRunSpec.parse({
            "model": str(model_dir), "trainDataPath": str(data), "registerTo": "main.tests",
            "trainingDuration": "4ba", "contextLength": 96, "learningRate": "3e-3", "evalPrompts": ["What is 2 plus 2?"], **spec,
        }),
        paths=TrainerPaths(checkpoint_root=tmp_path / "checkpoints", output_root=tmp_path / "outputs"),
        training=TrainingOptions(global_batch_size=2, device="cpu", eval_max_new_tokens=8),
    )


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_each_family_trains_checkpoints_and_exports(tmp_path, tiny_model_dir, single_process_group, family):
    from transformers import AutoModelForCausalLM

    config = _config(tmp_path, tiny_model_dir(family), f"fam-{family}")
    assert run(config) == 0

    losses = losses_by_step(config.metrics_file)
    assert sorted(losses) == [1, 2, 3, 4] and all(torch.isfinite(torch.tensor(list(losses.values()))))
    assert losses[4] < losses[1]
    assert (config.run_checkpoint_dir / "latest").read_text().strip().endswith("-ba4")
    exported = AutoModelForCausalLM.from_pretrained(config.export_dir)
    assert type(exported).__name__.lower().startswith(family)


def test_custom_weights_from_an_earlier_run_name(tmp_path, tiny_model_dir, single_process_group, monkeypatch):
    model_dir = tiny_model_dir("llama")
    earlier = _config(tmp_path, model_dir, "earlier", trainingDuration="6ba")
    assert run(earlier) == 0
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    later = _config(tmp_path, model_dir, "later", customWeightsPath="earlier", trainingDuration="1ba", learningRate="1e-9")
    assert run(later) == 0

    # With a learning rate too small to matter, the later run's loss is the earlier run's trained loss
    # on the same data, well below the base model's first-step loss.
    base_first = losses_by_step(earlier.metrics_file)[1]
    earlier_last = losses_by_step(earlier.metrics_file)[6]
    later_first = losses_by_step(later.metrics_file)[1]
    assert later_first < base_first
    assert later_first == pytest.approx(earlier_last, rel=0.15)
