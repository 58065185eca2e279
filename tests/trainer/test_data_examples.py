"""The quickstart's datasets are valid and are exactly what their generator writes."""

import filecmp
import os
import subprocess
import sys

import pytest
from helpers.cluster import REPO_ROOT

from kubetune.api.spec import TaskType
from kubetune.trainer.data import DataConfig, load_and_validate

pytestmark = pytest.mark.trainer
DATA = REPO_ROOT / "examples" / "data"


def test_generator_reproduces_the_committed_files(tmp_path):
    subprocess.run([sys.executable, str(DATA / "generate.py"), str(tmp_path)], check=True,
                   env={**os.environ, "PYTHONSAFEPATH": "1"})
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()
                             and p.name != "generate.py" and "__pycache__" not in p.parts)
    _, mismatch, errors = filecmp.cmpfiles(DATA, tmp_path, written, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert sum((DATA / name).stat().st_size for name in written) < 200 * 1024


@pytest.mark.parametrize(
    ("path", "task_type", "count"),
    [
        ("train.jsonl", TaskType.CHAT_COMPLETION, 320),
        ("eval.jsonl", TaskType.CHAT_COMPLETION, 40),
        ("instruction/train.jsonl", TaskType.INSTRUCTION_FINETUNE, 120),
        ("cpt", TaskType.CONTINUED_PRETRAIN, 12),
    ],
)
def test_example_datasets_are_valid(path, task_type, count):
    assert len(load_and_validate(DataConfig(str(DATA / path), task_type, 2048))) == count
