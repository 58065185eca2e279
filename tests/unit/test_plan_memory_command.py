"""A model folder's memory is planned in the validation step (issue 13): the operator cannot read the folder's
config.json, so the validation pod runs `kubetune plan-memory` with the operator's own inputs, and a folder that
would run out of GPU memory ends the run DoesNotFit with the same words a supported model gets at admission."""

import json

import pytest

from helpers.operator_factories import NOW, REF, make_config, make_run, make_spec, raw_pod
from kubetune.api.failures import DOES_NOT_FIT_EXIT, EndedAs, read_termination_message
from kubetune.api.spec import FineTuneRunSpec
from kubetune.cli.main import build_parser, main
from kubetune.operator import conditions as c
from kubetune.operator.builders.validation import build_validation_job
from kubetune.operator.observe import job_view
from kubetune.operator.placement import DoesNotFit, resolve_placement
from kubetune.operator.reconcile import Observed, decide

PLANNED = make_config(
    pools={
        "h100": {"gpusPerNode": 8, "gpuMemoryGiB": 80},
        "a10g": {"gpusPerNode": 1},
        "cpu": {"gpusPerNode": 0},
    },
    defaults={"pool": "h100", "validationPool": "cpu"},
)
LLAMA_70B = "meta-llama/Meta-Llama-3.1-70B-Instruct"
# config.json of a 70B Llama (its shape is MODEL_SHAPES[LLAMA_70B]) and of a tiny one.
CONFIG_70B = {
    "model_type": "llama", "vocab_size": 128256, "hidden_size": 8192, "num_hidden_layers": 80, "intermediate_size": 28672,
    "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 131072,
}
CONFIG_TINY = {
    "model_type": "llama", "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048, "tie_word_embeddings": True,
}


def model_folder(root, config: dict, name: str = "byo"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def plan_memory(*args: str, log=None) -> int:
    extra = ["--termination-log", str(log)] if log is not None else []
    return main(["plan-memory", *args, *extra])


def h100(model: str, *extra: str) -> list[str]:
    return ["--model", model, "--pool", "h100", "--gpu-memory-gib", "80", "--gpus-per-node", "8", *extra]


@pytest.fixture
def termination_log(tmp_path):
    log = tmp_path / "termination-log"
    log.touch()  # the kubelet's file: written only where it exists
    return log


class TestPlanMemoryCommand:
    def test_a_folder_that_fits_exits_0_and_leaves_no_message(self, tmp_path, termination_log, capsys):
        folder = model_folder(tmp_path, CONFIG_TINY)
        assert plan_memory(*h100(str(folder), "--nodes", "1"), log=termination_log) == 0
        out = capsys.readouterr().out
        assert "context 2048" in out  # the trainer's default: the folder's max_position_embeddings (under 8192)
        assert "fits:" in out and termination_log.read_text() == ""

    def test_a_folder_that_does_not_fit_says_so_exactly_like_a_supported_model(self, tmp_path, termination_log, capsys):
        folder = model_folder(tmp_path, CONFIG_70B)
        assert plan_memory(*h100(str(folder), "--nodes", "1"), log=termination_log) == DOES_NOT_FIT_EXIT
        assert termination_log.read_text().startswith("[kubetune:does-not-fit] ")  # what reaches the operator
        ended_as, text = read_termination_message(termination_log.read_text())
        assert ended_as is EndedAs.DOES_NOT_FIT
        spec = FineTuneRunSpec.parse(make_spec(model=LLAMA_70B, compute={"pool": "h100", "gpus": 8}))
        with pytest.raises(DoesNotFit) as admission:
            resolve_placement(spec.compute, PLANNED, spec)
        assert text == str(admission.value).replace(LLAMA_70B, str(folder))
        assert "does not fit on 1 node(s)" in text and "of 80 GiB GPUs; needs at least" in text
        assert text in capsys.readouterr().out

    def test_without_nodes_it_reports_the_fewest_that_fit(self, tmp_path, termination_log, capsys):
        folder = model_folder(tmp_path, CONFIG_70B)
        assert plan_memory(*h100(str(folder)), log=termination_log) == 0
        placement = resolve_placement(None, PLANNED, FineTuneRunSpec.parse(make_spec(model=LLAMA_70B, compute={"pool": "h100"})))
        assert f"needs at least {placement.nodes} node(s) of 8 GPUs" in capsys.readouterr().out

    def test_a_micro_batch_too_large_for_any_number_of_nodes(self, tmp_path, termination_log):
        folder = model_folder(tmp_path, CONFIG_70B)
        args = h100(str(folder), "--context-length", "131072", "--no-activation-checkpointing")
        assert plan_memory(*args, log=termination_log) == DOES_NOT_FIT_EXIT
        assert "does not fit on any number of 80 GiB GPUs" in termination_log.read_text()

    def test_a_claim_folder_is_read_where_the_claim_is_mounted(self, tmp_path, termination_log):
        model_folder(tmp_path / "models", CONFIG_70B)
        args = h100("pvc://models/byo", "--nodes", "1", "--pvc-mount-root", str(tmp_path))
        assert plan_memory(*args, log=termination_log) == DOES_NOT_FIT_EXIT
        assert "pvc://models/byo on pool 'h100' does not fit" in termination_log.read_text()

    @pytest.mark.parametrize("config, context, error", [
        (None, None, "config.json"),  # no config.json: not a Hugging Face model folder
        ({"model_type": "llama"}, None, "config.json has no 'num_attention_heads'"),
        (CONFIG_TINY, "4096", "larger than"),  # longer than the folder's maximum 2048
    ])
    def test_an_unreadable_folder_is_bad_input_not_a_refusal(self, tmp_path, termination_log, capsys, config, context, error):
        folder = model_folder(tmp_path, config) if config else tmp_path
        extra = ["--context-length", context] if context else []
        assert plan_memory(*h100(str(folder), *extra), log=termination_log) == 2
        assert error in capsys.readouterr().err and termination_log.read_text() == ""


def validation_containers(spec: dict, config=PLANNED) -> dict[str, list[str]]:
    pod = build_validation_job(REF, FineTuneRunSpec.parse(spec), config)["spec"]["template"]["spec"]
    return {c["name"]: c["command"] for c in pod["containers"]}


class TestValidationJob:
    @pytest.mark.parametrize("compute, context, nodes, per_node", [
        ({"pool": "h100", "gpus": 16}, 4096, "2", "8"),
        ({"pool": "h100", "nodes": 3, "gpusPerNode": 4}, None, "3", "4"),
        ({"pool": "h100"}, None, "1", "8"),  # node count open: the one node the operator places it on
    ])
    def test_a_folder_on_a_pool_with_gpu_memory_is_planned_with_the_operators_inputs(self, compute, context, nodes, per_node):
        spec = make_spec(model="pvc://models/byo", compute=compute, **({"contextLength": context} if context else {}))
        command = validation_containers(spec)["plan-memory"]
        expected = [
            "kubetune", "plan-memory", "--model", "pvc://models/byo", "--pool", "h100", "--gpu-memory-gib", "80.0",
            "--gpus-per-node", per_node, "--nodes", nodes, "--micro-batch", "1", "--activation-checkpointing",
        ]
        assert command == expected + (["--context-length", str(context)] if context else [])
        assert build_parser().parse_args(command[1:]).func.__module__ == "kubetune.cli.plan_memory"

    @pytest.mark.parametrize("spec, config", [
        (make_spec(model=LLAMA_70B, compute={"pool": "h100", "nodes": 8}), PLANNED),  # planned at admission
        (make_spec(model="hf://acme/byo"), PLANNED),  # a hub id: no folder a pod mounts
        (make_spec(model="s3://bucket/byo"), PLANNED),  # an object store: not read by the validation pod
        (make_spec(model="/models/byo"), make_config()),  # the pool does not say its GPUs' memory
        (make_spec(model="/models/byo", compute={"pool": "h100", "gpus": 0}), PLANNED),  # no GPUs
    ])
    def test_no_plan_where_the_operator_plans_or_nothing_can_be_planned(self, spec, config):
        assert "plan-memory" not in validation_containers(spec, config)

    def test_the_command_the_operator_builds_runs_against_the_mounted_folder(self, tmp_path, termination_log):
        model_folder(tmp_path / "models", CONFIG_70B)
        command = validation_containers(make_spec(model="pvc://models/byo", compute={"pool": "h100", "gpus": 8}))["plan-memory"]
        assert plan_memory(*command[2:], "--pvc-mount-root", str(tmp_path), log=termination_log) == DOES_NOT_FIT_EXIT
        assert read_termination_message(termination_log.read_text())[0] is EndedAs.DOES_NOT_FIT


def test_a_validation_pod_that_says_does_not_fit_ends_the_run_without_training(tmp_path, termination_log):
    model_folder(tmp_path / "models", CONFIG_70B)
    spec = make_spec(model="pvc://models/byo", compute={"pool": "h100", "gpus": 8})
    command = validation_containers(spec)["plan-memory"]
    plan_memory(*command[2:], "--pvc-mount-root", str(tmp_path), log=termination_log)
    message = termination_log.read_text()
    pod = raw_pod("chat-validate-x", "Failed", containerStatuses=[
        {"name": "plan-memory", "state": {"terminated": {"exitCode": DOES_NOT_FIT_EXIT, "message": message}}},
        {"name": "validate-train", "state": {"terminated": {"exitCode": 0}}},
    ])
    job = job_view({"metadata": {"name": "chat-validate"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}, [pod])
    first = decide(make_run(spec), Observed(), PLANNED, NOW)
    plan = decide(make_run(spec, status=first.status.model_dump(by_alias=True)), Observed(validation=job), PLANNED, NOW)
    assert plan.status.phase == "Failed" and plan.create == []
    failed = c.find(plan.status.conditions, c.FAILED)
    assert failed.reason == c.DOES_NOT_FIT
    assert failed.message == read_termination_message(message)[1]
    assert failed.message.startswith("pvc://models/byo on pool 'h100' does not fit on 1 node(s)")
