"""The parsing rules users hit in FineTuneRun.spec, good and bad values, with the messages checked."""

import pytest

from kubetune.api import FineTuneRunSpec, SpecError
from kubetune.api.duration import TrainingDuration
from kubetune.api.supported_models import SUPPORTED_MODELS, lookup

BASE = {"model": "meta-llama/Llama-3.2-1B-Instruct", "trainDataPath": "/data/train.jsonl", "registerTo": "main.default"}


def spec(**changes) -> dict:
    out = {**BASE, **changes}
    return {k: v for k, v in out.items() if v is not None}


def problems(data: dict) -> list[str]:
    with pytest.raises(SpecError) as error:
        FineTuneRunSpec.parse(data)
    return [str(p) for p in error.value.problems]


def test_minimal_spec_takes_databricks_defaults():
    parsed = FineTuneRunSpec.parse(spec())
    assert parsed.task_type == "CHAT_COMPLETION"
    assert parsed.training_duration == "1ep" and parsed.duration == TrainingDuration(1, "ep")
    assert parsed.validate_inputs is True and parsed.suspend is False
    assert parsed.effective_learning_rate() == 5e-6
    assert parsed.effective_context_length() == 8192  # min(8192, 131072)


@pytest.mark.parametrize("text, value, unit", [("1ep", 1, "ep"), ("10ep", 10, "ep"), ("1000000tok", 1000000, "tok"), ("500ba", 500, "ba")])
def test_training_duration_good(text, value, unit):
    assert FineTuneRunSpec.parse(spec(trainingDuration=text)).duration == TrainingDuration(value, unit)


@pytest.mark.parametrize("text", ["0ep", "ep", "1.5ep", "10 ep", "3epochs", "-1ba", "10", "1e6tok"])
def test_training_duration_bad(text):
    (message,) = problems(spec(trainingDuration=text))
    assert message.startswith("spec.trainingDuration: must be a positive whole number followed by ep (epochs), tok")
    assert repr(text) in message


@pytest.mark.parametrize("value, expected", [("5e-6", 5e-6), ("0.0001", 1e-4), (".5", 0.5), ("3E-5", 3e-5), (2e-5, 2e-5)])
def test_learning_rate_good(value, expected):
    assert FineTuneRunSpec.parse(spec(learningRate=value)).effective_learning_rate() == expected


@pytest.mark.parametrize("value", ["-1e-5", "0", "0.0", "abc", "1e-5x", "", "nan"])
def test_learning_rate_bad(value):
    (message,) = problems(spec(learningRate=value))
    assert message.startswith('spec.learningRate: must be a positive number, e.g. 5e-6 or "5e-6"')


@pytest.mark.parametrize("value, name", [
    ("main.default", "main.default.run_1"),
    ("main.default.my_model", "main.default.my_model"),
    ("_cat.s2.M_1", "_cat.s2.M_1"),
])
def test_register_to_good(value, name):
    assert FineTuneRunSpec.parse(spec(registerTo=value)).registered_model_name("run-1") == name


@pytest.mark.parametrize("value", ["main", "main.", "1main.default", "main.default.my-model", "a.b.c.d", "main .default", "main.default."])
def test_register_to_bad(value):
    (message,) = problems(spec(registerTo=value))
    assert message.startswith("spec.registerTo: must be <catalog>.<schema> or <catalog>.<schema>.<name>")


def test_context_length_within_model_maximum():
    assert FineTuneRunSpec.parse(spec(contextLength=131072)).effective_context_length() == 131072
    (message,) = problems(spec(contextLength=131073))
    assert "contextLength 131073 is larger than meta-llama/Llama-3.2-1B-Instruct's maximum 131072" in message
    (message,) = problems(spec(contextLength=0))
    assert message.startswith("spec.contextLength: Input should be greater than or equal to 1")


def test_context_length_of_bring_your_own_model_defers_to_its_config():
    parsed = FineTuneRunSpec.parse(spec(model="./models/tiny", contextLength=100000))
    assert parsed.effective_context_length() == 100000
    assert FineTuneRunSpec.parse(spec(model="/models/tiny")).effective_context_length(model_max=2048) == 2048


@pytest.mark.parametrize("task", ["CHAT_COMPLETION", "INSTRUCTION_FINETUNE", "CONTINUED_PRETRAIN"])
def test_task_types(task):
    assert FineTuneRunSpec.parse(spec(taskType=task)).task_type == task


def test_task_type_bad():
    (message,) = problems(spec(taskType="SUMMARIZE"))
    assert message.startswith("spec.taskType: Input should be 'CHAT_COMPLETION', 'INSTRUCTION_FINETUNE' or 'CONTINUED_PRETRAIN'")


@pytest.mark.parametrize("model", ["gpt-4", "meta-llama/Llama-9", "google/gemma-2b"])
def test_unknown_model(model):
    (message,) = problems(spec(model=model))
    assert message.startswith("spec.model: must be a supported model (run `kubetune models`)")


@pytest.mark.parametrize("compute", [
    {"pool": "h100", "nodes": 2, "gpusPerNode": 8},
    {"gpus": 16},
    {"pool": "cpu", "gpus": 0},
    {"pool": "a10g", "podTemplate": {"metadata": {"annotations": {"x": "y"}}}},
])
def test_compute_good(compute):
    assert FineTuneRunSpec.parse(spec(compute=compute)).compute is not None


@pytest.mark.parametrize("compute, expected", [
    ({"gpus": 16, "nodes": 2}, "spec.compute: set either gpus, or nodes and gpusPerNode, not both"),
    ({"nodes": 0}, "spec.compute.nodes: Input should be greater than or equal to 1"),
    ({"gpus": -1}, "spec.compute.gpus: Input should be greater than or equal to 0"),
    ({"pool": "H100"}, "spec.compute.pool: must be a lowercase DNS label"),
    ({"gpu": 8}, "spec.compute.gpu: is not a FineTuneRun field"),
])
def test_compute_bad(compute, expected):
    (message,) = problems(spec(compute=compute))
    assert message.startswith(expected)


@pytest.mark.parametrize("path", ["pvc://data-claim/sets/train.jsonl", "s3://bucket/train.jsonl", "gs://b/x", "abfss://c@a.dfs.core.windows.net/x",
                                  "/mnt/data/train.jsonl", "./train.jsonl", "train.jsonl", "org/dataset/train", "file:///data/x.jsonl"])
def test_data_paths_good(path):
    assert FineTuneRunSpec.parse(spec(trainDataPath=path, evalDataPath=path)).train_data_path == path


@pytest.mark.parametrize("path, expected", [
    ("ftp://host/x.jsonl", "spec.trainDataPath: unknown scheme ftp://"),
    ("pvc://Bad_Claim/x", "spec.trainDataPath: pvc:// paths must be pvc://CLAIM/path"),
    ("just-a-name", "spec.trainDataPath: must be pvc://CLAIM/path, an object-store URI"),
])
def test_data_paths_bad(path, expected):
    (message,) = problems(spec(trainDataPath=path))
    assert message.startswith(expected)


def test_every_problem_is_reported_at_once_and_missing_fields_are_named():
    found = problems({"model": "nope", "trainingDuration": "x", "extra": 1})
    joined = "\n".join(found)
    for fragment in ("spec.trainDataPath: is required", "spec.registerTo: is required", "spec.model: must be a supported",
                     "spec.trainingDuration: must be", "spec.extra: is not a FineTuneRun field"):
        assert fragment in joined
    assert len(found) == 5


def test_problems_point_at_manifest_lines():
    with pytest.raises(SpecError) as error:
        FineTuneRunSpec.parse(spec(trainingDuration="3 epochs", compute={"nodes": 0}))
    located = error.value.with_location("run.yaml", {"spec": 5, "spec.trainingDuration": 9, "spec.compute": 11})
    lines = sorted(str(p) for p in located.problems)
    assert lines[0].startswith("run.yaml:11: spec.compute.nodes: ")  # nearest parent's line
    assert lines[1].startswith("run.yaml:9: spec.trainingDuration: ")


def test_snake_case_round_trip_to_manifest():
    parsed = FineTuneRunSpec(model=BASE["model"], train_data_path="/d.jsonl", register_to="a.b", learning_rate=1e-5,
                             eval_prompts=["hi"])
    assert parsed.to_manifest_spec() == {
        "model": BASE["model"], "trainDataPath": "/d.jsonl", "registerTo": "a.b", "taskType": "CHAT_COMPLETION",
        "evalPrompts": ["hi"], "trainingDuration": "1ep", "learningRate": "1e-05", "validateInputs": True, "suspend": False,
    }


def test_supported_models_table_covers_the_families():
    families = {m.family for m in SUPPORTED_MODELS.values()}
    assert families == {"llama", "mistral", "mixtral", "qwen2"}
    assert lookup("mistralai/Mistral-7B-Instruct-v0.2").accepts_system_role is False
    assert lookup("Qwen/Qwen2.5-7B-Instruct").max_context_length == 32768
    assert lookup("meta-llama/Llama-3.3-70B-Instruct").default_context_length == 8192
    for name in ("meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "mistralai/Mixtral-8x7B-Instruct-v0.1"):
        assert lookup(name) is not None
