"""The run commands' parsing, validation before any API call, and rendering (no cluster needed)."""

from datetime import datetime, timezone
from textwrap import dedent

import pytest

from helpers.run_objects import make_run
from kubetune.api.manifest import load_manifest
from kubetune.cli.create import create_arguments
from kubetune.cli.main import build_parser, main
from kubetune.cli.runs import describe, render_resource, render_table, runs_table
from kubetune.sdk.run import TrainingRun

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
MANIFEST = dedent(
    """\
    apiVersion: kubetune.io/v1alpha1
    kind: FineTuneRun
    metadata:
      name: support-bot
    spec:
      model: meta-llama/Llama-3.2-1B-Instruct
      trainDataPath: pvc://datasets/chat/train.jsonl
      registerTo: main
      trainingDuration: 3 epochs
      evalPrompts:
        - hi
        - 42
      colour: blue
    """
)


def test_manifest_problems_name_file_and_line(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(MANIFEST)
    # An unreachable kubeconfig proves nothing is sent: validation fails first.
    assert main(["create", "-f", str(path), "--kubeconfig", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:8: spec.registerTo: must be <catalog>.<schema>" in err
    assert f"{path}:9: spec.trainingDuration: must be a positive whole number" in err
    assert f"{path}:12: spec.evalPrompts.1:" in err
    assert f"{path}:13: spec.colour: is not a FineTuneRun field" in err


def test_manifest_must_be_a_finetunerun(tmp_path, capsys):
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n")
    assert main(["create", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: apiVersion: must be kubetune.io/v1alpha1 (got 'v1')" in err
    assert f"{path}:2: kind: must be FineTuneRun (got 'Pod')" in err
    assert f"{path}: spec: is required" in err


def test_broken_yaml_and_missing_file(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("spec:\n  model: [unclosed\n")
    assert main(["create", "-f", str(path)]) == 2
    assert f"{path}:3: manifest: is not valid YAML" in capsys.readouterr().err
    assert main(["create", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "manifest: cannot be read" in capsys.readouterr().err


def test_field_lines():
    document, lines = load_manifest_text(MANIFEST)
    assert document["spec"]["evalPrompts"] == ["hi", 42]
    assert lines["metadata.name"] == 4 and lines["spec"] == 5 and lines["spec.evalPrompts.0"] == 11


def load_manifest_text(text, tmp=None):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.yaml"
        path.write_text(text)
        return load_manifest(path)


def test_flag_problems_use_argument_names(capsys):
    code = main(["create", "--model", "gpt-17", "--train-data-path", "pvc://d/train.jsonl", "--register-to", "main.ft",
                 "--training-duration", "forever", "--kubeconfig", "/nonexistent"])
    assert code == 2
    err = capsys.readouterr().err
    assert "  - model: must be a supported model" in err and "  - training_duration: must be" in err


def test_flags_and_manifest_do_not_mix(tmp_path, capsys):
    assert main(["create", "-f", str(tmp_path / "x.yaml"), "--model", "m"]) == 2
    assert "use either -f or run flags, not both (got -f and --model)" in capsys.readouterr().err
    assert main(["create", "--model", "meta-llama/Llama-3.2-1B"]) == 2
    assert "missing --train-data-path, --register-to" in capsys.readouterr().err


def test_create_flags_become_fm_create_arguments():
    args = build_parser().parse_args([
        "create", "--model", "m", "--train-data-path", "d", "--register-to", "a.b", "--eval-prompt", "p1",
        "--eval-prompt", "p2", "--no-validate-inputs", "--pool", "h100", "--nodes", "2", "--gpus-per-node", "8",
        "--learning-rate", "1e-5", "--name", "my-run", "-n", "team-a",
    ])
    assert create_arguments(args) == {
        "model": "m", "train_data_path": "d", "register_to": "a.b", "eval_prompts": ["p1", "p2"],
        "validate_inputs": False, "learning_rate": "1e-5", "name": "my-run",
        "compute": {"pool": "h100", "nodes": 2, "gpus_per_node": 8},
    }
    assert args.namespace == "team-a"


def test_missing_kubeconfig_is_named(tmp_path, capsys):
    assert main(["list", "--kubeconfig", str(tmp_path / "missing-kubeconfig")]) == 2
    assert f"kubetune: kubeconfig {tmp_path / 'missing-kubeconfig'} does not exist" in capsys.readouterr().err


def test_unreachable_api_server_is_exit_code_3(tmp_path, capsys):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(dedent(
        """\
        apiVersion: v1
        kind: Config
        clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
        users: [{name: u, user: {token: t}}]
        contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
        current-context: x
        """
    ))
    assert main(["get", "r", "--kubeconfig", str(kubeconfig)]) == 3
    assert "kubetune: cannot reach the Kubernetes API server at http://127.0.0.1:9: " in capsys.readouterr().err


@pytest.fixture
def runs():
    return [
        TrainingRun.from_resource(make_run(
            "support-bot", created="2025-03-01T09:00:00Z", phase="Running",
            status={"progress": {"percent": 42, "display": "42% ETA 12m", "step": 10}, "metrics": {"trainLoss": 1.712345}},
        )),
        TrainingRun.from_resource(make_run("fresh", created="2025-03-01T11:59:30Z")),
    ]


def test_list_table(runs):
    assert render_table(runs_table(runs, NOW)).splitlines() == [
        "NAME          STATUS    PROGRESS      LOSS    MODEL                              AGE",
        "support-bot   RUNNING   42% ETA 12m   1.712   meta-llama/Llama-3.2-1B-Instruct   3h",
        "fresh         PENDING   -             -       meta-llama/Llama-3.2-1B-Instruct   30s",
    ]


def test_describe_shows_checkpoints_and_registered_model():
    run = TrainingRun.from_resource(make_run(
        "support-bot", created="2025-03-01T09:00:00Z", phase="Succeeded",
        status={
            "completionTime": "2025-03-01T11:00:00Z",
            "checkpoints": [{"name": "ep1-ba56", "path": "pvc://ckpt/support-bot/ep1-ba56", "step": 56}],
            "registeredModel": {"name": "main.finetunes.support_bot", "version": "2"},
            "events": [{"type": "COMPLETED", "time": "2025-03-01T11:00:00Z", "message": "Registered version 2."}],
        },
    ))
    text = describe(run, NOW)
    assert "Status:            COMPLETED (phase Succeeded)" in text
    assert "Registered model:  main.finetunes.support_bot version 2" in text
    assert "  ep1-ba56         step 56       pvc://ckpt/support-bot/ep1-ba56" in text
    assert "Completed:         2025-03-01T11:00:00+00:00 (1h ago)" in text
    assert text.rstrip().endswith("COMPLETED         Registered version 2.")


def test_output_formats_drop_managed_fields():
    resource = make_run("r")
    resource["metadata"]["managedFields"] = [{"manager": "kubetune-sdk"}]
    assert "managedFields" not in render_resource(resource, "yaml")
    assert '"name": "r"' in render_resource(resource, "json")
