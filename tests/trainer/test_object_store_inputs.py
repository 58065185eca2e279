"""Object stores as the pods reach them: a real S3-compatible server (moto, on loopback) and credentials only
from the environment (the storage Secret's keys). The trainer reads its data, model folder and custom weights
from s3://; `kubetune validate-data` (the validation step's command) reads data, a Delta table and a model
folder's tokenizer there."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.data import chat
from helpers.s3_server import BUCKET, s3_env, upload  # noqa: F401  (s3_env is a fixture)
from kubetune.api import checkpoints
from kubetune.api.trainer_config import TrainerConfig

KUBETUNE = str(Path(sys.executable).with_name("kubetune"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def validate_data(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": str(Path(sys.executable).parent), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONSAFEPATH": "1"}
    return subprocess.run(
        [KUBETUNE, "validate-data", *args], capture_output=True, text=True, env={**base, **env}, timeout=300
    )


def test_validate_data_reads_jsonl_and_a_delta_table_on_s3(tmp_path, s3_env):
    from deltalake import write_deltalake
    import pyarrow as pa

    data = tmp_path / "chat"
    data.mkdir()
    (data / "part-1.jsonl").write_text(json.dumps(chat("What is 2 plus 2?", "4")) + "\n")
    (data / "part-2.jsonl").write_text(json.dumps(chat("Hi", "Hello")) + "\n" + json.dumps(chat("x", "y")) + "\n")
    upload(data, f"s3://{BUCKET}/validate/chat")
    write_deltalake(str(tmp_path / "table"), pa.table({"prompt": ["a", "b", "c"], "response": ["1", "2", "3"]}))
    upload(tmp_path / "table", f"s3://{BUCKET}/validate/table")

    folder = validate_data(f"s3://{BUCKET}/validate/chat", env=s3_env)
    assert folder.returncode == 0, folder.stdout + folder.stderr
    assert f"OK: 3 valid CHAT_COMPLETION examples in s3://{BUCKET}/validate/chat" in folder.stdout

    table = validate_data(f"s3://{BUCKET}/validate/table", "--task-type", "INSTRUCTION_FINETUNE", env=s3_env)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "OK: 3 valid INSTRUCTION_FINETUNE examples" in table.stdout


def test_validate_data_reports_bad_lines_and_a_missing_object_on_s3_in_one_line(tmp_path, s3_env):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(chat("q", "a")) + "\n{not json\n")
    upload(bad, f"s3://{BUCKET}/bad/bad.jsonl")

    result = validate_data(f"s3://{BUCKET}/bad/bad.jsonl", env=s3_env)
    assert result.returncode == 1
    assert f"s3://{BUCKET}/bad/bad.jsonl:2" in result.stdout and "invalid JSON" in result.stdout

    missing = validate_data(f"s3://{BUCKET}/nothing/here.jsonl", env=s3_env)
    assert missing.returncode == 1 and "Traceback" not in missing.stdout + missing.stderr
    assert f"s3://{BUCKET}/nothing/here.jsonl" in missing.stdout and "no such file or folder" in missing.stdout


def test_validate_data_takes_the_tokenizer_of_a_model_folder_on_s3(tmp_path, tiny_model_dir, s3_env):
    upload(tiny_model_dir("llama"), f"s3://{BUCKET}/models/tiny-llama-tokenizer")
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(chat("What is 2 plus 2?", "4")) + "\n")

    env = {**s3_env, "KUBETUNE_STAGING_DIR": str(tmp_path / "staging")}
    result = validate_data(str(data), "--model", f"s3://{BUCKET}/models/tiny-llama-tokenizer", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tokens per example" in result.stdout
    staged = list((tmp_path / "staging").iterdir())
    assert len(staged) == 1 and not list(staged[0].glob("*.safetensors"))  # config and tokenizer, no weights


def test_gs_and_abfs_without_their_package_fail_in_one_line_naming_it(tmp_path):
    for uri, package in (("gs://bucket/train.jsonl", "gcsfs"), ("abfss://c@account.dfs.core.windows.net/t.jsonl", "adlfs")):
        result = validate_data(uri, env={})
        assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
        assert f"pip install {package}" in result.stdout


@pytest.mark.trainer
def test_the_trainer_reads_model_data_and_custom_weights_from_s3(
    tmp_path, tiny_model_dir, single_process_group, recipe_config, monkeypatch, caplog, s3_env
):
    from helpers.mlflow_server import free_port
    from kubetune.trainer.recipe import run

    (tmp_path / "earlier").mkdir()
    (tmp_path / "later").mkdir()
    earlier = recipe_config(tmp_path / "earlier", tiny_model_dir("llama"), "earlier")
    assert run(earlier) == 0
    upload(earlier.run_checkpoint_dir, f"s3://{BUCKET}/weights/earlier/checkpoints")
    upload(tiny_model_dir("llama"), f"s3://{BUCKET}/models/tiny-llama")
    upload(Path(earlier.spec.train_data_path), f"s3://{BUCKET}/data/train.jsonl")

    monkeypatch.setenv("KUBETUNE_STAGING_DIR", str(tmp_path / "staging"))
    later = recipe_config(tmp_path / "later", f"s3://{BUCKET}/models/tiny-llama", "later")
    spec = later.spec.model_copy(update={
        "train_data_path": f"s3://{BUCKET}/data/train.jsonl",
        "custom_weights_path": f"s3://{BUCKET}/weights/earlier/checkpoints/latest",
        "eval_prompts": None,
    })
    later = TrainerConfig.model_validate_json(later.model_copy(update={"spec": spec}).dump())  # as the pod reads it
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    with caplog.at_level("INFO", logger="kubetune.trainer"):
        assert run(later) == 0
    checkpoint = checkpoints.latest_checkpoint(earlier.run_checkpoint_dir)
    staged = [p for p in (tmp_path / "staging").iterdir() if (p / checkpoints.COMPLETE_MARKER).is_file()]
    assert len(staged) == 1, list((tmp_path / "staging").iterdir())
    assert f"started from the weights of {staged[0]}" in caplog.text
    assert sorted(p.name for p in staged[0].iterdir()) == sorted(p.name for p in checkpoint.iterdir())
    assert any((p / "config.json").is_file() for p in (tmp_path / "staging").iterdir())  # the model folder
    assert "loaded " in caplog.text and str(tmp_path / "staging") in caplog.text
    assert checkpoints.latest_checkpoint(later.run_checkpoint_dir) is not None


def test_custom_weights_on_s3_without_a_complete_checkpoint_is_the_users_error(tmp_path, s3_env, monkeypatch):
    monkeypatch.setenv("KUBETUNE_STAGING_DIR", str(tmp_path / "staging"))
    half = tmp_path / "ep1-ba2"
    half.mkdir()
    (half / ".metadata").write_bytes(b"")
    upload(half, f"s3://{BUCKET}/half/ep1-ba2")
    with pytest.raises(checkpoints.CheckpointNotFoundError, match="no complete checkpoint"):
        checkpoints.resolve_custom_weights(f"s3://{BUCKET}/half/ep1-ba2", tmp_path / "ckpt")
