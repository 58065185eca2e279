"""Object stores as the pods reach them: real servers on loopback (moto's S3, gcp-storage-emulator, Azurite) and
credentials only from the environment (the storage Secret's keys). The trainer reads its data, model folder and
custom weights from each; `kubetune validate-data` (the validation step's command) reads data, a Delta table and
a model folder's tokenizer on s3:// (gs:// and abfs[s]:// in test_object_store_gcs_azure.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.data import chat
from helpers.object_stores import (  # noqa: F401  (azure_env, gcs_env and gcs_key are fixtures)
    AZURITE_ACCOUNT,
    CONTAINER,
    azure_env,
    gcs_env,
    gcs_key,
    upload,
    validate_data,
)
from helpers.s3_server import BUCKET, s3_env  # noqa: F401  (s3_env is a fixture)
from kubetune.api import checkpoints
from kubetune.api.trainer_config import TrainerConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
GCS = f"gs://{BUCKET}"
AZURE = f"abfss://{CONTAINER}@{AZURITE_ACCOUNT}.dfs.core.windows.net"  # as Databricks and Spark write it


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
    # The trainer extra installs gcsfs and adlfs; an image without them is what this checks, so the command runs
    # with both made unimportable.
    for uri, package in (("gs://bucket/train.jsonl", "gcsfs"), ("abfss://c@account.dfs.core.windows.net/t.jsonl", "adlfs")):
        hide = f"import sys; sys.modules[{package!r}] = None; from kubetune.cli.main import main; sys.exit(main())"
        result = subprocess.run(
            [sys.executable, "-c", hide, "validate-data", uri], capture_output=True, text=True, timeout=300,
            env={"PATH": str(Path(sys.executable).parent), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONSAFEPATH": "1"},
        )
        assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
        assert f"pip install {package}" in result.stdout


@pytest.mark.trainer
@pytest.mark.parametrize("store", ["s3", "gcs", "azure"])
def test_the_trainer_reads_model_data_and_custom_weights_from_each_store(
    store, request, tmp_path, tiny_model_dir, single_process_group, recipe_config, monkeypatch, caplog
):
    from helpers.mlflow_server import free_port
    from kubetune.trainer.recipe import run

    if store == "s3":
        env, root, upload_root = request.getfixturevalue("s3_env"), f"s3://{BUCKET}/trainer", f"s3://{BUCKET}/trainer"
    elif store == "gcs":
        env, root, upload_root = request.getfixturevalue("gcs_key")[0], f"{GCS}/trainer", f"{GCS}/trainer"
    else:  # as Databricks and Spark write it; the upload goes through the container's short form
        env, root, upload_root = request.getfixturevalue("azure_env"), f"{AZURE}/trainer", f"abfs://{CONTAINER}/trainer"
    for name, value in env.items():  # as the pod's envFrom gives them
        monkeypatch.setenv(name, value)

    (tmp_path / "earlier").mkdir()
    (tmp_path / "later").mkdir()
    earlier = recipe_config(tmp_path / "earlier", tiny_model_dir("llama"), "earlier")
    assert run(earlier) == 0
    upload(earlier.run_checkpoint_dir, f"{upload_root}/weights/earlier/checkpoints")
    upload(tiny_model_dir("llama"), f"{upload_root}/models/tiny-llama")
    upload(Path(earlier.spec.train_data_path), f"{upload_root}/data/train.jsonl")

    monkeypatch.setenv("KUBETUNE_STAGING_DIR", str(tmp_path / "staging"))
    later = recipe_config(tmp_path / "later", f"{root}/models/tiny-llama", "later")
    spec = later.spec.model_copy(update={
        "train_data_path": f"{root}/data/train.jsonl",
        "custom_weights_path": f"{root}/weights/earlier/checkpoints/latest",
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
