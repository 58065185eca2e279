"""One location parser for every side (kubetune.api.locations): pvc:// models, data and custom weights are
read at the claim's mount point by the real trainer (tests/trainer/test_data_validate_cli.py shows the same
for `kubetune validate-data`, the validation step's command), and the data rules come from one decision
(kubetune.trainer.data.rules_for) in the trainer, `validate-data` and local mode."""

import json
import shutil

import pytest

from helpers.data import chat
from kubetune.api import checkpoints
from kubetune.api.trainer_config import TrainerConfig
from kubetune.local.runner import LocalRun, validate_data
from kubetune.trainer.recipe import run

pytestmark = pytest.mark.trainer


def test_the_trainer_starts_from_pvc_custom_weights_of_a_pvc_model_on_pvc_data(
    tmp_path, claims, tiny_model_dir, single_process_group, recipe_config, monkeypatch, caplog
):
    from helpers.mlflow_server import free_port

    (tmp_path / "earlier").mkdir()
    (tmp_path / "later").mkdir()
    earlier = recipe_config(tmp_path / "earlier", tiny_model_dir("llama"), "earlier")
    assert run(earlier) == 0
    shutil.copytree(earlier.run_checkpoint_dir, claims / "weights" / "earlier" / "checkpoints")

    later = recipe_config(tmp_path / "later", "pvc://models/tiny-llama", "later")
    spec = later.spec.model_copy(update={
        "train_data_path": "pvc://datasets/train.jsonl",
        "custom_weights_path": "pvc://weights/earlier/checkpoints/latest",
        "eval_prompts": None,
    })
    later = later.model_copy(update={"spec": spec, "paths": later.paths.model_copy(update={"pvc_mount_root": claims})})
    later = TrainerConfig.model_validate_json(later.dump())  # as the pod reads it from the ConfigMap
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    with caplog.at_level("INFO", logger="kubetune.trainer"):
        assert run(later) == 0
    started_from = checkpoints.latest_checkpoint(claims / "weights" / "earlier" / "checkpoints")
    assert f"started from the weights of {started_from}" in caplog.text
    assert checkpoints.latest_checkpoint(later.run_checkpoint_dir) is not None


def test_local_mode_applies_the_model_folders_system_role_rule(tmp_path, tiny_model_dir):
    """A model folder outside the table whose template refuses `system` (Mistral's): local mode's validation
    says so, as the trainer and `validate-data` do, instead of passing data that fails in training."""
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(chat("q", "a", system="be brief")) + "\n")
    from kubetune.api.spec import FineTuneRunSpec

    spec = FineTuneRunSpec.parse({
        "model": str(tiny_model_dir("mistral")), "trainDataPath": str(data), "registerTo": "main.tests",
    })
    problems = validate_data(LocalRun("sys", spec, tmp_path / "state", "sqlite:///unused.db"))
    assert len(problems) == 1 and "does not accept a `system` message" in problems[0], problems
