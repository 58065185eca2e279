"""The recipe in this process (world size 1 over gloo, the FSDP2 code path) on each model family,
and a run that starts from another run's checkpoint (customWeightsPath)."""

import pytest
import torch

from helpers.mlflow_server import free_port
from helpers.torchrun import losses_by_step
from kubetune.trainer.recipe import run

pytestmark = pytest.mark.trainer

@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_each_family_trains_checkpoints_and_exports(tmp_path, tiny_model_dir, single_process_group, recipe_config, family):
    from transformers import AutoModelForCausalLM

    config = recipe_config(tmp_path, tiny_model_dir(family), f"fam-{family}")
    assert run(config) == 0

    losses = losses_by_step(config.metrics_file)
    assert sorted(losses) == [1, 2, 3, 4] and all(torch.isfinite(torch.tensor(list(losses.values()))))
    assert losses[4] < losses[1]
    assert (config.run_checkpoint_dir / "latest").read_text().strip().endswith("-ba4")
    exported = AutoModelForCausalLM.from_pretrained(config.export_dir)
    assert type(exported).__name__.lower().startswith(family)


def test_custom_weights_from_an_earlier_run_name(tmp_path, tiny_model_dir, single_process_group, recipe_config, monkeypatch):
    model_dir = tiny_model_dir("llama")
    earlier = recipe_config(tmp_path, model_dir, "earlier", trainingDuration="6ba")
    assert run(earlier) == 0
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    later = recipe_config(tmp_path, model_dir, "later", customWeightsPath="earlier", trainingDuration="1ba", learningRate="1e-9")
    assert run(later) == 0

    # With a learning rate too small to matter, the later run's loss is the earlier run's trained loss
    # on the same data, well below the base model's first-step loss.
    base_first = losses_by_step(earlier.metrics_file)[1]
    earlier_last = losses_by_step(earlier.metrics_file)[6]
    later_first = losses_by_step(later.metrics_file)[1]
    assert later_first < base_first
    assert later_first == pytest.approx(earlier_last, rel=0.15)
