"""The validation step against a real S3-compatible server (moto on loopback): the Job the operator builds for
a run whose model, data, mapped Unity Catalog table and custom weights are all on s3://, each container's
command run as its pod runs it, with the environment its envFrom Secret references would give it."""

import json
import subprocess
import sys
from pathlib import Path

from deltalake import write_deltalake
import pyarrow as pa

from helpers.data import chat
from helpers.operator_factories import NOW, make_config, make_run, make_spec
from helpers.object_stores import upload
from helpers.s3_server import BUCKET, s3_env  # noqa: F401  (s3_env is a fixture)
from kubetune.operator.reconcile import Observed, decide


def run_container(container: dict, secrets: dict[str, dict[str, str]], home: Path) -> subprocess.CompletedProcess:
    """The container's command with its env, then its envFrom Secrets' keys in order (a later one wins)."""
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONSAFEPATH": "1"}
    env |= {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    env |= {"HOME": str(home), "HF_HOME": str(home / "hf"), "KUBETUNE_STAGING_DIR": str(home / "staging")}
    for source in container.get("envFrom", []):
        env |= secrets.get(source["secretRef"]["name"], {})
    return subprocess.run(container["command"], capture_output=True, text=True, env=env, timeout=300)


def test_the_validation_step_reads_model_data_table_and_weights_from_s3(tmp_path, tiny_model_dir, s3_env):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(chat(f"What is {n} plus 1?", str(n + 1))) + "\n" for n in range(4)))
    upload(data, f"s3://{BUCKET}/step/train.jsonl")
    write_deltalake(str(tmp_path / "table"), pa.table({"messages": [chat("Hi", "Hello")["messages"]] * 2}))
    upload(tmp_path / "table", f"s3://{BUCKET}/step/delta/chat_table")
    upload(tiny_model_dir("llama"), f"s3://{BUCKET}/step/models/tiny-llama")
    checkpoint = tmp_path / "ep1-ba4"
    checkpoint.mkdir()
    (checkpoint / "COMPLETE").write_text("")
    upload(checkpoint, f"s3://{BUCKET}/step/runs/earlier/checkpoints/ep1-ba4")
    (tmp_path / "latest").write_text("ep1-ba4\n")
    upload(tmp_path / "latest", f"s3://{BUCKET}/step/runs/earlier/checkpoints/latest")

    pools = make_config().model_dump(by_alias=True, exclude_none=True, mode="json")["pools"]
    pools["cpu"]["storageCredentialsSecret"] = "pool-s3"
    config = make_config(pools=pools, databricks={"tables": {"main.default.chat_table": f"s3://{BUCKET}/step/delta/chat_table"}})
    run = make_run(make_spec(
        model=f"s3://{BUCKET}/step/models/tiny-llama", trainDataPath=f"s3://{BUCKET}/step/train.jsonl",
        evalDataPath="main.default.chat_table", customWeightsPath=f"s3://{BUCKET}/step/runs/earlier/checkpoints/latest",
        compute={"pool": "cpu", "gpus": 0}, contextLength=64,
    ))
    (job,) = decide(run, Observed(), config, NOW).create
    containers = job["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["validate-train", "validate-eval", "validate-weights"]
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in json.dumps(job)  # the Job names the Secret, never its values

    results = {c["name"]: run_container(c, {"pool-s3": s3_env}, tmp_path / "home") for c in containers}
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
    assert "OK: 4 valid CHAT_COMPLETION examples" in results["validate-train"].stdout
    assert "tokens per example" in results["validate-train"].stdout  # the tokenizer of the model folder on s3://
    assert "OK: 2 valid CHAT_COMPLETION examples" in results["validate-eval"].stdout
    assert "is the complete checkpoint" in results["validate-weights"].stdout
