"""Fixtures for trainer tests: tiny real tokenizers and models, data files, quiet CPU torch."""

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers.mlflow_server import free_port
from kubetune.api.spec import FineTuneRunSpec
from kubetune.api.trainer_config import RunIdentity, TrainerConfig, TrainerPaths, TrainingOptions
from kubetune.trainer.tiny_models import build_tokenizer, build_tiny_model



@pytest.fixture(autouse=True, scope="session")
def _one_cpu_thread():
    # The test machine is shared; tiny models gain nothing from more threads.
    torch.set_num_threads(1)


@functools.cache
def _cached_tokenizer(family: str):
    return build_tokenizer(family)


@pytest.fixture(scope="session")
def tokenizer_for():
    """tokenizer_for("llama") -> the family's tiny tokenizer (built once per session; do not mutate)."""
    return _cached_tokenizer


@pytest.fixture(scope="session")
def model_for(tokenizer_for):
    """model_for("qwen2", attn_implementation="eager") -> a fresh tiny fp32 model of that family."""

    def build(family: str, **kwargs):
        return build_tiny_model(family, tokenizer_for(family), **kwargs)

    return build


@pytest.fixture
def write_jsonl(tmp_path):
    """write_jsonl("name.jsonl", [records or raw lines]) -> path; str items are written verbatim."""

    def write(name: str, records: list) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """tiny_model_dir("qwen2") -> a saved tiny model folder of that family (weights, config, tokenizer), once per session."""
    from kubetune.trainer.tiny_models import save_tiny_model

    root = tmp_path_factory.mktemp("models")

    @functools.cache
    def folder(family: str = "llama") -> Path:
        return save_tiny_model(family, root / f"tiny-{family}")

    return folder


QUESTIONS = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(3, 9) for b in (2, 5)]


@pytest.fixture
def single_process_group(monkeypatch):
    """What torchrun would set for a one-process run."""
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)


def _recipe_config(tmp_path, model_dir, name: str, **spec) -> TrainerConfig:
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


@pytest.fixture
def recipe_config():
    """recipe_config(tmp_path, model_dir, name, **spec) -> a TrainerConfig for a 4-batch CPU run on arithmetic chats."""
    return _recipe_config


@pytest.fixture
def claims(tmp_path, tiny_model_dir):
    """A pvc mount root holding three claims, as the operator mounts them: models/, datasets/, weights/."""
    root = tmp_path / "mnt-data"
    shutil.copytree(tiny_model_dir("llama"), root / "models" / "tiny-llama")
    (root / "datasets").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "data" / "train.jsonl", root / "datasets" / "train.jsonl")
    return root
