"""Local mode reads the same Unity Catalog mapping as the operator (kubetune.api.databricks_locations) from a
file: --databricks-locations FILE, or the file KUBETUNE_DATABRICKS_LOCATIONS names. `kubetune validate-data`
reads a mapped volume path and a mapped table (a Delta table, with delta-rs); `kubetune run --local` refuses an
unmapped form before anything runs, saying how to map it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import yaml
from deltalake import write_deltalake

from helpers.data import chat

KUBETUNE = str(Path(sys.executable).with_name("kubetune"))


def kubetune(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": str(Path(sys.executable).parent), "HOME": str(cwd), "PYTHONSAFEPATH": "1"}
    return subprocess.run([KUBETUNE, *args], capture_output=True, text=True, env={**base, **env}, cwd=cwd, timeout=300)


def test_validate_data_reads_mapped_volumes_and_tables_from_the_locations_file(tmp_path):
    volume = tmp_path / "volumes" / "chat"
    volume.mkdir(parents=True)
    (volume / "train.jsonl").write_text(json.dumps(chat("Hi", "Hello")) + "\n")
    write_deltalake(str(tmp_path / "delta" / "pairs"), pa.table({"prompt": ["a", "b"], "response": ["1", "2"]}))
    mapping = tmp_path / "locations.yaml"
    mapping.write_text(yaml.safe_dump({
        "volumes": {"main.default.chat": str(tmp_path / "volumes" / "chat")},
        "tables": {"main.default.pairs": str(tmp_path / "delta" / "pairs")},
    }))

    by_flag = kubetune("validate-data", "/Volumes/main/default/chat/train.jsonl", "--databricks-locations", str(mapping), cwd=tmp_path)
    assert by_flag.returncode == 0, by_flag.stdout + by_flag.stderr
    assert "OK: 1 valid CHAT_COMPLETION examples" in by_flag.stdout

    by_env = kubetune(
        "validate-data", "main.default.pairs", "--task-type", "INSTRUCTION_FINETUNE", cwd=tmp_path,
        KUBETUNE_DATABRICKS_LOCATIONS=str(mapping),
    )
    assert by_env.returncode == 0, by_env.stdout + by_env.stderr
    assert "OK: 2 valid INSTRUCTION_FINETUNE examples" in by_env.stdout

    unmapped = kubetune("validate-data", "dbfs:/Volumes/main/default/other/x.jsonl", "--databricks-locations", str(mapping), cwd=tmp_path)
    assert unmapped.returncode == 2 and "databricks.volumes (main.default.other:" in unmapped.stderr


def test_a_local_run_naming_an_unmapped_table_is_refused_before_it_starts(tmp_path):
    manifest = tmp_path / "run.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneRun", "metadata": {"name": "uc"},
        "spec": {"model": "meta-llama/Llama-3.2-1B-Instruct", "trainDataPath": "main.default.chat_table", "registerTo": "main.default"},
    }))
    result = kubetune("run", str(manifest), "--local", "--no-progress-bar", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "spec.trainDataPath" in result.stderr and "databricks.tables (main.default.chat_table:" in result.stderr
    assert not (tmp_path / ".kubetune").exists()  # nothing ran

    bad_file = tmp_path / "broken.yaml"
    bad_file.write_text("volumes: {main: pvc://x/y}\n")
    broken = kubetune("run", str(manifest), "--local", cwd=tmp_path, KUBETUNE_DATABRICKS_LOCATIONS=str(bad_file))
    assert broken.returncode == 2 and "invalid Databricks locations file" in broken.stderr
    assert os.fspath(bad_file) in broken.stderr
