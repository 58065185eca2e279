"""A model folder is planned in the validation step, on the real control plane (kwok pools, the real operator):
the validation pod runs `kubetune plan-memory` next to the data checks, and a folder that would run out of GPU
memory ends the run Failed, reason DoesNotFit, with that command's message, before any training Job exists."""

import json
import time

import pytest

from helpers.operator_driver import example_run
from kubetune.api.failures import DOES_NOT_FIT_EXIT, read_termination_message
from kubetune.cli.main import main

pytestmark = pytest.mark.cluster

# A 70B Llama's config.json: 16 bytes a parameter sharded over 8 GPUs is already 140 GB a GPU.
CONFIG_70B = {
    "model_type": "llama", "vocab_size": 128256, "hidden_size": 8192, "num_hidden_layers": 80, "intermediate_size": 28672,
    "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 131072,
}


def test_a_model_folder_that_cannot_fit_fails_does_not_fit_without_training(runs, tmp_path, monkeypatch):
    folder = tmp_path / "models" / "byo-70b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG_70B))
    name = runs.apply(example_run("folder", model="./models/byo-70b", compute={"pool": "h100", "gpus": 8}, validateInputs=True))

    [validator] = runs.wait_pods_running("folder-validate", 1)
    commands = {c.name: c.command for c in validator.spec.containers}
    assert set(commands) == {"validate-train", "validate-eval", "plan-memory"}
    command = commands["plan-memory"]
    assert command[:4] == ["kubetune", "plan-memory", "--model", "./models/byo-70b"]
    assert command[command.index("--nodes") + 1] == "1" and command[command.index("--gpu-memory-gib") + 1] == "80.0"
    assert command[command.index("--context-length") + 1] == "4096"

    # What the pod's command says, run here against the folder (the pod's working directory holds ./models).
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "termination-log"
    log.touch()
    assert main([*command[1:], "--termination-log", str(log)]) == DOES_NOT_FIT_EXIT
    runs.finish_pods("folder-validate", DOES_NOT_FIT_EXIT, message=log.read_text())

    status = runs.wait_phase(name, "Failed", timeout=90)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DoesNotFit"
    assert failed["message"] == read_termination_message(log.read_text())[1]
    assert failed["message"].startswith("./models/byo-70b on pool 'h100' does not fit on 1 node(s)")
    assert "needs at least" in failed["message"]
    # The Event follows the status write that it reports.
    runs.wait_for("the DoesNotFit Event", lambda: any(e.reason == "DoesNotFit" for e in runs.events(name)), 30)
    time.sleep(3)  # a few resyncs: the run stays Failed, and nothing is retried or trained
    assert [job.metadata.name for job in runs.jobs(name)] == ["folder-validate"]
    assert runs.status(name)["phase"] == "Failed"
