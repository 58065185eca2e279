"""Reading records from every data location form, keeping each record's origin."""

import json

import fsspec
import pytest
from helpers.data import chat

from kubetune.api.locations import parse_data_path
from kubetune.api.spec import TaskType
from kubetune.trainer.data import DataConfig, DataValidationError, load_and_validate
from kubetune.trainer.data.sources import read_records

pytestmark = pytest.mark.trainer
CHAT = TaskType.CHAT_COMPLETION


def _contents(examples):
    return [e.messages[0].content for e in examples]


def test_local_file_keeps_file_and_line(write_jsonl):
    path = write_jsonl("train.jsonl", [chat("a", "1"), "", chat("b", "2")])
    examples = load_and_validate(DataConfig(str(path), CHAT, 128))
    assert _contents(examples) == ["a", "b"]
    assert [(e.origin.file, e.origin.line) for e in examples] == [(str(path), 1), (str(path), 3)]


def test_folder_reads_jsonl_files_sorted_and_skips_hidden_and_other_files(write_jsonl, tmp_path):
    write_jsonl("data/b.jsonl", [chat("b", "x")])
    write_jsonl("data/a.jsonl", [chat("a", "x")])
    write_jsonl("data/sub/c.jsonl", [chat("c", "x")])
    write_jsonl("data/.ipynb_checkpoints/a-checkpoint.jsonl", [{"broken": True}])
    write_jsonl("data/_tmp/x.jsonl", [{"broken": True}])
    (tmp_path / "data" / "notes.md").write_text("not data")
    examples = load_and_validate(DataConfig(str(tmp_path / "data"), CHAT, 128))
    assert _contents(examples) == ["a", "b", "c"]


def test_file_url_and_memory_filesystem(write_jsonl):
    path = write_jsonl("train.jsonl", [chat("local", "x")])
    assert _contents(load_and_validate(DataConfig(f"file://{path}", CHAT, 128))) == ["local"]

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/data/part-1.jsonl", (json.dumps(chat("m1", "x")) + "\n").encode())
    fs.pipe("/bucket/data/part-0.jsonl", (json.dumps(chat("m0", "x")) + "\n{oops\n").encode())
    with pytest.raises(DataValidationError) as caught:
        load_and_validate(DataConfig("memory://bucket/data", CHAT, 128))
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == ("memory:///bucket/data/part-0.jsonl", 2)
    assert problem.rule.startswith("invalid JSON: Expecting property name")
    fs.rm("/bucket", recursive=True)


def test_pvc_path_resolves_under_the_mount_root(write_jsonl, tmp_path):
    write_jsonl("mnt/my-claim/datasets/train.jsonl", [chat("pvc", "x")])
    config = DataConfig("pvc://my-claim/datasets/train.jsonl", CHAT, 128, pvc_mount_root=tmp_path / "mnt")
    [example] = load_and_validate(config)
    assert example.messages[0].content == "pvc"
    assert example.origin.file == str(tmp_path / "mnt/my-claim/datasets/train.jsonl")


def test_huggingface_dataset_through_load_dataset_from_a_mirror(tmp_path):
    import datasets

    mirror = tmp_path / "hub"
    rows = [chat("hf0", "x"), chat("hf1", "y", system="s")]
    datasets.Dataset.from_list(rows).to_parquet(str(mirror / "acme/chats/data/train-00000-of-00001.parquet"))
    datasets.Dataset.from_list([chat("ev", "x")]).to_parquet(str(mirror / "acme/chats/data/test-00000-of-00001.parquet"))
    config = DataConfig("acme/chats/train", CHAT, 128, dataset_root=mirror, hf_cache_dir=tmp_path / "cache")
    examples = load_and_validate(config)
    # The system message exists only in row 2: columnar nulls must not become keys in row 1.
    assert _contents(examples) == ["hf0", "s"]
    assert [str(e.origin) for e in examples] == ["acme/chats/train:1", "acme/chats/train:2"]
    assert _contents(load_and_validate(DataConfig("acme/chats/test", CHAT, 128, dataset_root=mirror,
                                                  hf_cache_dir=tmp_path / "cache"))) == ["ev"]


def test_huggingface_dataset_missing_from_the_mirror(tmp_path):
    with pytest.raises(DataValidationError, match="dataset acme/none is not in the mirror"):
        load_and_validate(DataConfig("acme/none/train", CHAT, 128, dataset_root=tmp_path))


def test_delta_table_rows(tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    table = pa.Table.from_pylist([{"prompt": "p1", "response": "r1"}, {"prompt": "p2", "response": None}])
    write_deltalake(str(tmp_path / "table"), table)
    with pytest.raises(DataValidationError) as caught:
        load_and_validate(DataConfig(str(tmp_path / "table"), TaskType.INSTRUCTION_FINETUNE, 128))
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(tmp_path / "table"), 2)
    assert "exactly `prompt` and `response`" in problem.rule


def test_continued_pretraining_reads_each_txt_file_as_one_example(tmp_path):
    (tmp_path / "docs" / "more").mkdir(parents=True)
    (tmp_path / "docs" / "b.txt").write_text("second document\nwith two lines")
    (tmp_path / "docs" / "a.txt").write_text("first document")
    (tmp_path / "docs" / "more" / "c.txt").write_text("third")
    (tmp_path / "docs" / "ignored.jsonl").write_text('{"text": "not read"}\n')
    examples = load_and_validate(DataConfig(str(tmp_path / "docs"), TaskType.CONTINUED_PRETRAIN, 128))
    assert [e.text for e in examples] == ["first document", "second document\nwith two lines", "third"]
    assert examples[0].origin.line is None and examples[0].origin.file.endswith("docs/a.txt")


def test_undecodable_text_file_is_a_problem_with_its_name(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataValidationError, match=r"bad\.txt: not valid UTF-8"):
        load_and_validate(DataConfig(str(tmp_path / "docs"), TaskType.CONTINUED_PRETRAIN, 128))


@pytest.mark.parametrize(
    ("make_path", "rule"),
    [
        (lambda tmp: str(tmp / "missing.jsonl"), "no such file or folder"),
        (lambda tmp: str(tmp), "the folder holds no .jsonl or .json files"),
        (lambda tmp: "ftp://host/x", "unknown scheme ftp://"),
    ],
)
def test_location_problems(tmp_path, make_path, rule):
    with pytest.raises(DataValidationError, match=rule):
        load_and_validate(DataConfig(make_path(tmp_path), CHAT, 128))


def test_read_records_is_deterministic(write_jsonl, tmp_path):
    write_jsonl("d/x.jsonl", [chat("x", "1")] * 3)
    location = parse_data_path(str(tmp_path / "d"))
    first = list(read_records(location, CHAT))
    assert first == list(read_records(location, CHAT))
    assert [r.origin.line for r in first] == [1, 2, 3]
