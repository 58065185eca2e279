"""Hugging Face datasets as users keep them (kubetune.trainer.data.hf_datasets): save_to_disk folders as a
path or in the offline mirror, and one-line errors offline, in the trainer's reader, `kubetune validate-data`
and local mode."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubetune.api.spec import TaskType
from kubetune.trainer.data import DataConfig, DataValidationError, load_and_validate

pytestmark = pytest.mark.trainer

CHAT = TaskType.CHAT_COMPLETION
KUBETUNE = str(Path(sys.executable).parent / "kubetune")


def chat(question: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "an answer"}]}


def contents(examples) -> list[str]:
    return [e.messages[0].content for e in examples]


@pytest.fixture
def saved(tmp_path):
    """saved("name", train=[...], test=[...]) -> a DatasetDict save_to_disk folder; one split -> a Dataset folder
    when dict=False."""
    import datasets

    def save(name: str, dict_folder: bool = True, **splits) -> Path:
        folder = tmp_path / name
        parts = {split: datasets.Dataset.from_list([chat(q) for q in rows]) for split, rows in splits.items()}
        (datasets.DatasetDict(parts) if dict_folder else next(iter(parts.values()))).save_to_disk(str(folder))
        return folder

    return save


def test_a_saved_dataset_folder_is_read_as_a_dataset_not_as_json_files(saved):
    folder = saved("single", dict_folder=False, train=["q1", "q2"])
    examples = load_and_validate(DataConfig(str(folder), CHAT, 128))
    assert contents(examples) == ["q1", "q2"]
    assert [str(e.origin) for e in examples] == [f"{folder}:1", f"{folder}:2"]


def test_a_saved_dataset_dict_gives_its_only_split_or_the_one_named_by_its_subfolder(saved):
    assert contents(load_and_validate(DataConfig(str(saved("one", train=["a"])), CHAT, 128))) == ["a"]
    both = saved("both", train=["t"], test=["e"])
    assert contents(load_and_validate(DataConfig(str(both / "test"), CHAT, 128))) == ["e"]
    with pytest.raises(DataValidationError, match=r"holds several splits; its splits are test, train: name one as .*/both/<split>"):
        load_and_validate(DataConfig(str(both), CHAT, 128))


def test_the_mirror_may_hold_save_to_disk_folders(saved, tmp_path):
    saved("mirror/acme/chats", train=["t1", "t2"], test=["e1"])
    saved("mirror/acme/single", dict_folder=False, train=["s1"])
    mirror = tmp_path / "mirror"
    assert contents(load_and_validate(DataConfig("acme/chats/test", CHAT, 128, dataset_root=mirror))) == ["e1"]
    assert contents(load_and_validate(DataConfig("acme/single/train", CHAT, 128, dataset_root=mirror))) == ["s1"]
    with pytest.raises(DataValidationError, match="has no split 'validation'; its splits are test, train"):
        load_and_validate(DataConfig("acme/chats/validation", CHAT, 128, dataset_root=mirror))
    with pytest.raises(DataValidationError, match="dataset acme/none is not in the mirror"):
        load_and_validate(DataConfig("acme/none/train", CHAT, 128, dataset_root=mirror))


def offline_env(tmp_path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONSAFEPATH": "1"}


def test_offline_a_hub_dataset_missing_everywhere_is_one_line_that_says_where_to_put_it(tmp_path):
    result = subprocess.run([KUBETUNE, "validate-data", "acme/none/train", "--task-type", "CHAT_COMPLETION"],
                            capture_output=True, text=True, env=offline_env(tmp_path), timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "dataset acme/none is offline" in result.stdout + result.stderr
    assert "--dataset-root" in result.stdout + result.stderr


def test_validate_data_reads_the_mirror_named_by_the_environment(saved, tmp_path):
    saved("mirror/acme/chats", train=["t1"])
    env = {**offline_env(tmp_path), "KUBETUNE_DATASET_ROOT": str(tmp_path / "mirror")}
    result = subprocess.run([KUBETUNE, "validate-data", "acme/chats/train", "--task-type", "CHAT_COMPLETION"],
                            capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 1 valid CHAT_COMPLETION examples in acme/chats/train" in result.stdout


def test_local_mode_trains_from_a_mirrored_hub_dataset_offline(saved, tmp_path):
    import json

    import yaml
    from test_local_mode import small_quickstart  # the local-mode test's quickstart

    manifest = small_quickstart(tmp_path / "project")
    rows = [json.loads(line)["messages"][0]["content"] for line in (tmp_path / "project/data/train.jsonl").read_text().splitlines()]
    saved("mirror/acme/support-chats", train=rows[:16])
    text = yaml.safe_load(manifest.read_text())
    text["spec"].update(trainDataPath="acme/support-chats/train", trainingDuration="2ba")
    text["spec"].pop("evalDataPath", None)
    manifest.write_text(yaml.safe_dump(text, sort_keys=False))
    state = tmp_path / "state"
    state.mkdir()
    env = {**offline_env(tmp_path), "OMP_NUM_THREADS": "1", "HOME": str(state)}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [KUBETUNE, "run", str(manifest), "--local", "--state-dir", str(state), "--no-progress-bar",
         "--dataset-root", str(tmp_path / "mirror")],
        capture_output=True, text=True, env=env, timeout=600, cwd=state,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TRAIN_FINISHED" in result.stdout
