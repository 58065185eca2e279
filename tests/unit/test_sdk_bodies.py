"""The objects fm.create() sends are valid against the CRD's schema; bad arguments fail in both places.

The CRD's openAPIV3Schema is checked with a real JSON-schema validator. It is
OpenAPI v3: the x-kubernetes-* extensions are dropped, and objects with declared
properties get additionalProperties: false because the SDK creates runs with
fieldValidation=Strict (the API server then rejects unknown fields). CEL rules
(x-kubernetes-validations) run only in the API server: the cluster tests cover them.
"""

from typing import Any

import jsonschema
import pytest
from pydantic.alias_generators import to_camel

from kubetune.api import API_VERSION, KIND
from kubetune.api.crd import build_crd
from kubetune.api.errors import SpecError
from kubetune.sdk.build import (
    MAX_GENERATED_NAME,
    build_run_manifest,
    generate_run_name,
    model_short_name,
    spec_from_arguments,
)

REQUIRED = {
    "model": "meta-llama/Llama-3.2-3B-Instruct",
    "train_data_path": "pvc://datasets/chat/train.jsonl",
    "register_to": "main.finetunes",
}


def strict_openapi_to_jsonschema(node: Any) -> Any:
    if isinstance(node, list):
        return [strict_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (strict_openapi_to_jsonschema(v) if k not in ("properties",) else {p: strict_openapi_to_jsonschema(s) for p, s in v.items()})
        for k, v in node.items()
        if not k.startswith("x-kubernetes-")
    }
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if node.get("exclusiveMinimum") is True:  # OpenAPI v3.0's flag on minimum is JSON Schema's number
        out["exclusiveMinimum"] = out.pop("minimum")
    return out


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    converted = strict_openapi_to_jsonschema(schema)
    jsonschema.Draft202012Validator.check_schema(converted)
    return jsonschema.Draft202012Validator(converted)


def schema_errors(validator, body: dict[str, Any]) -> list[str]:
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body))


GOOD_ARGUMENTS = [
    pytest.param({}, id="required-only"),
    pytest.param({"task_type": "INSTRUCTION_FINETUNE", "training_duration": "3ep", "learning_rate": 5e-6}, id="ift"),
    pytest.param({"task_type": "CONTINUED_PRETRAIN", "train_data_path": "s3://bucket/corpus/", "training_duration": "1000000tok"}, id="cpt"),
    pytest.param(
        {
            "eval_data_path": "pvc://datasets/chat/eval.jsonl",
            "eval_prompts": ["What is Kubernetes?", "Say hi"],
            "custom_weights_path": "llama-3-2-3b-instruct-abc123",  # an earlier run's name, kept as given
            "training_duration": "500ba",
            "learning_rate": "1e-5",
            "context_length": 4096,
            "validate_inputs": False,
            "experiment_path": "/Users/team-a/support-bot",
            "register_to": "main.finetunes.support_bot",
        },
        id="every-field",
    ),
    pytest.param({"compute": {"pool": "h100", "gpus": 16}}, id="compute-gpus"),
    pytest.param({"compute": {"pool": "a100", "nodes": 2, "gpus_per_node": 8}}, id="compute-nodes"),
    pytest.param({"compute": {"gpus": 0}}, id="cpu"),
    pytest.param({"model": "pvc://models/my-llama", "context_length": 200000}, id="bring-your-own-model"),
    pytest.param({"train_data_path": "org/dataset/train", "experiment_path": ""}, id="hf-dataset-databricks-default-experiment"),
]


@pytest.mark.parametrize("extra", GOOD_ARGUMENTS)
def test_create_bodies_are_valid_against_the_crd(validator, extra):
    spec = spec_from_arguments(**{**REQUIRED, **extra})
    body = build_run_manifest(generate_run_name(spec.model), spec, "team-a")
    assert schema_errors(validator, body) == []
    assert body["apiVersion"] == API_VERSION and body["kind"] == KIND
    assert body["metadata"]["namespace"] == "team-a"
    for argument, value in extra.items():
        if argument not in ("compute", "experiment_path", "learning_rate"):
            assert body["spec"][to_camel(argument)] == value


def test_databricks_defaults_fill_the_spec():
    body = build_run_manifest("r", spec_from_arguments(**REQUIRED, task_type=None, training_duration=None, experiment_path=""))
    assert body["spec"] == {
        "model": REQUIRED["model"],
        "trainDataPath": REQUIRED["train_data_path"],
        "registerTo": REQUIRED["register_to"],
        "taskType": "CHAT_COMPLETION",
        "trainingDuration": "1ep",
        "validateInputs": True,
        "suspend": False,
    }
    assert "namespace" not in body["metadata"]


def test_learning_rate_is_sent_as_a_string_the_crd_accepts(validator):
    body = build_run_manifest("r", spec_from_arguments(**REQUIRED, learning_rate=5e-6))
    assert body["spec"]["learningRate"] == "5e-06"
    assert float(body["spec"]["learningRate"]) == 5e-6


def test_compute_keys_are_camel_case_in_the_body(validator):
    body = build_run_manifest("r", spec_from_arguments(**REQUIRED, compute={"nodes": 2, "gpus_per_node": 4}))
    assert body["spec"]["compute"] == {"nodes": 2, "gpusPerNode": 4}
    assert schema_errors(validator, body) == []


BAD_ARGUMENTS = [
    # (argument, value, the field the SDK names, a word of the rule)
    pytest.param("register_to", "main", "register_to", "catalog", id="register-to-one-part"),
    pytest.param("register_to", "main.bad-name", "register_to", "catalog", id="register-to-dash"),
    pytest.param("training_duration", "3 epochs", "training_duration", "ep", id="duration-words"),
    pytest.param("training_duration", "0ep", "training_duration", "ep", id="duration-zero"),
    pytest.param("task_type", "CLASSIFICATION", "task_type", "CHAT_COMPLETION", id="task-type"),
    pytest.param("context_length", 0, "context_length", "greater", id="context-zero"),
    pytest.param("learning_rate", "fast", "learning_rate", "positive", id="learning-rate-text"),
    pytest.param("eval_prompts", ["p"] * 65, "eval_prompts", "64", id="too-many-prompts"),
    pytest.param("compute", {"pool": "GPU_Pool"}, "compute.pool", "DNS", id="pool-not-dns"),
    pytest.param("compute", {"nodes": 0}, "compute.nodes", "greater", id="zero-nodes"),
    pytest.param("compute", {"gpus_per_node": 65}, "compute.gpus_per_node", "less", id="gpus-per-node"),
]


@pytest.mark.parametrize("argument,value,field,rule_word", BAD_ARGUMENTS)
def test_bad_arguments_fail_in_the_sdk_and_in_the_crd_schema(validator, argument, value, field, rule_word):
    with pytest.raises(SpecError) as raised:
        spec_from_arguments(**{**REQUIRED, argument: value})
    (problem,) = raised.value.problems
    assert problem.field == field
    assert rule_word.lower() in problem.rule.lower()
    assert f"{field}:" in str(raised.value)

    # The same value sent without the SDK's check is refused by the CRD's schema too.
    raw = {to_camel(k): v for k, v in REQUIRED.items()}
    raw[to_camel(argument)] = {to_camel(k): v for k, v in value.items()} if isinstance(value, dict) else value
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "r"}, "spec": raw}
    errors = schema_errors(validator, body)
    assert errors and all(e.startswith(f"spec.{to_camel(argument)}") for e in errors), errors


def test_every_problem_is_reported_at_once_by_argument_name():
    with pytest.raises(SpecError) as raised:
        spec_from_arguments(model="gpt-17", train_data_path="", register_to="main", training_duration="forever")
    fields = sorted(p.field for p in raised.value.problems)
    assert fields == ["model", "register_to", "train_data_path", "training_duration"]


@pytest.mark.parametrize(
    "model,short",
    [
        ("meta-llama/Llama-3.2-3B-Instruct", "llama-3-2-3b-instruct"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "mistral-7b-instruct-v0-2"),
        ("Qwen/Qwen2.5-0.5B", "qwen2-5-0-5b"),
        ("pvc://models/My_Model/", "my-model"),
        ("///", "run"),
    ],
)
def test_model_short_name(model, short):
    assert model_short_name(model) == short


@pytest.mark.parametrize(
    "model",
    ["meta-llama/Meta-Llama-3.1-405B-Instruct", "pvc://models/7b-custom", "s3://b/" + "x" * 80, "Qwen/Qwen2.5-72B-Instruct"],
)
def test_generated_names_are_short_dns_labels(validator, model):
    name = generate_run_name(model)
    assert len(name) <= MAX_GENERATED_NAME
    assert name[0].isalpha() and name[-1].isalnum()
    assert all(c.islower() or c.isdigit() or c == "-" for c in name)
    assert "--" not in name


def test_generated_names_differ():
    names = {generate_run_name("meta-llama/Llama-3.2-1B") for _ in range(50)}
    assert len(names) == 50
    assert generate_run_name("meta-llama/Llama-3.2-1B", token="abc123") == "llama-3-2-1b-abc123"


def test_create_checks_everything_before_connecting(tmp_path):
    """No cluster is configured here: these calls must fail on their arguments, before any connection."""
    from kubetune import foundation_model as fm

    fm.configure(kubeconfig=tmp_path / "no-such-kubeconfig")
    try:
        with pytest.raises(SpecError) as raised:
            fm.create(**REQUIRED, name="Not_A_DNS_Label")
        assert [p.field for p in raised.value.problems] == ["name"]
        with pytest.warns(UserWarning, match="data_prep_cluster_id is ignored"), pytest.raises(SpecError):
            fm.create(model="gpt-17", train_data_path=REQUIRED["train_data_path"], register_to="main.ft",
                      data_prep_cluster_id="0123-456789-abcdef")
        with pytest.raises(fm.KubeconfigError, match="does not exist"):
            fm.create(**REQUIRED)
    finally:
        fm.configure()
