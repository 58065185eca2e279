"""`kubetune validate-data`, run as users run it, on good and bad data."""

import os
import subprocess
import sys

import pytest
from helpers.cluster import REPO_ROOT
from helpers.data import chat

from kubetune.cli.main import main

pytestmark = pytest.mark.trainer
TINY_LLAMA = REPO_ROOT / "examples" / "models" / "tiny-llama"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["validate-data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_console_script_reports_token_counts_and_packing():
    result = subprocess.run(
        [sys.executable, "-m", "kubetune.cli.main", "validate-data", "examples/data/train.jsonl",
         "--model", str(TINY_LLAMA), "--context-length", "512"],
        cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONSAFEPATH": "1"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "OK: 320 valid CHAT_COMPLETION examples in examples/data/train.jsonl"
    assert lines[1].startswith("tokens per example: min ")
    assert "p95" in lines[1]
    assert lines[2] == "examples truncated at context length 512: 0"
    assert lines[3].startswith("estimated tokens per epoch: ")
    assert lines[4].startswith("packing: 320 examples into ") and "efficiency 9" in lines[4]


def test_a_delta_table_is_validated_by_a_process_that_exits_cleanly(tmp_path):
    """The validation pod's exit code is its verdict: Arrow's threaded scanner aborted the process after it
    printed OK in about one run of three (SIGABRT at interpreter exit), so several runs must all exit 0."""
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path / "pairs"), pa.table({"prompt": ["a", "b"], "response": ["1", "2"]}))
    command = [sys.executable, "-m", "kubetune.cli.main", "validate-data", str(tmp_path / "pairs"), "--task-type", "INSTRUCTION_FINETUNE"]
    for _ in range(6):
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONSAFEPATH": "1"}, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("OK: 2 valid INSTRUCTION_FINETUNE examples")


def test_bad_data_prints_every_problem_and_exits_1(capsys, write_jsonl):
    path = write_jsonl("bad.jsonl", [chat("q", "a"), '{"messages": oops}', {"prompt": "p"}, chat("q", "a", "q2")])
    code, out, _ = _run(capsys, str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:2: invalid JSON: Expecting value (column 14)",
        f"{path}:3: `messages` must be the only key (found: `prompt`)",
        f"{path}:4: the last message must be from the assistant",
        "invalid data: 3 problem(s)",
    ]


def test_a_supported_hub_model_without_a_local_copy_checks_the_format_only(capsys, write_jsonl):
    path = write_jsonl("ok.jsonl", [chat("q", "a", system="s")])
    code, out, _ = _run(capsys, str(path), "--model", "meta-llama/Llama-3.2-1B-Instruct")
    assert code == 0
    assert out.splitlines() == [
        f"OK: 1 valid CHAT_COMPLETION examples in {path}",
        "no local copy of meta-llama/Llama-3.2-1B-Instruct: format checks only "
        "(pass --tokenizer PATH for token counts and packing)",
    ]


def test_mistral_rejects_system_messages(capsys, write_jsonl):
    path = write_jsonl("ok.jsonl", [chat("q", "a", system="s")])
    code, out, _ = _run(capsys, str(path), "--model", "mistralai/Mistral-7B-Instruct-v0.2")
    assert code == 1
    assert "ok.jsonl:1: messages[0]: this model does not accept a `system` message" in out


def test_other_task_types_and_truncation(capsys):
    code, out, _ = _run(capsys, str(REPO_ROOT / "examples/data/cpt"), "--task-type", "CONTINUED_PRETRAIN",
                        "--tokenizer", str(TINY_LLAMA), "--context-length", "128")
    assert code == 0
    assert "OK: 12 valid CONTINUED_PRETRAIN examples" in out
    assert "documents split at context length 128: 12" in out
    code, out, _ = _run(capsys, str(REPO_ROOT / "examples/data/instruction/train.jsonl"),
                        "--task-type", "INSTRUCTION_FINETUNE", "--tokenizer", str(TINY_LLAMA), "--context-length", "40")
    assert code == 0
    truncated = int(out.split("examples truncated at context length 40: ")[1].split()[0])
    assert 0 < truncated < 120


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "acme/unknown-model"], "neither a supported model nor a local model folder"),
        (["--model", "mistralai/Mistral-7B-v0.1", "--context-length", "65536"], "larger than the model's maximum 32768"),
        (["--tokenizer", "/nonexistent/tok"], "--tokenizer /nonexistent/tok: no such folder"),
    ],
)
def test_usage_errors_exit_2(capsys, write_jsonl, argv, message):
    path = write_jsonl("ok.jsonl", [chat("q", "a")])
    code, _, err = _run(capsys, str(path), *argv)
    assert code == 2
    assert message in err


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["validate-data", "x.jsonl", "--task-type", "SUMMARIZE"])
    assert caught.value.code == 2


def test_validate_data_reads_a_pvc_model_and_pvc_data_at_the_mount_root(capsys, claims):
    code = main(["validate-data", "pvc://datasets/train.jsonl", "--model", "pvc://models/tiny-llama",
                 "--pvc-mount-root", str(claims), "--context-length", "256"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "OK: 320 valid CHAT_COMPLETION examples in pvc://datasets/train.jsonl"
    assert lines[1].startswith("tokens per example: ")  # the tokenizer came from the pvc:// model folder


def test_validate_data_names_a_pvc_model_that_is_not_mounted(capsys, claims):
    code = main(["validate-data", "pvc://datasets/train.jsonl", "--model", "pvc://other/model",
                 "--pvc-mount-root", str(claims)])
    assert code == 2
    assert f"no model folder at {claims / 'other' / 'model'}" in capsys.readouterr().err
