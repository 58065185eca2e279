"""learningRate as every client parses it: a YAML/JSON number or a string, one validation, one stored form.

kubectl reads an unquoted `5e-6` as a number, PyYAML (`kubetune create -f`) as a
string, and `5.0e-6` as a float; the SDK takes a float or a string. All of them
become the same float, and Kubetune's clients send it as the string "5e-06".
"""

import textwrap

import pytest

from kubetune.api import FineTuneRunSpec, SpecError
from kubetune.api.crd import build_crd, number_or_string, structural
from kubetune.cli.create import spec_from_manifest
from kubetune.sdk.build import spec_from_arguments

BASE = {"model": "meta-llama/Llama-3.2-1B-Instruct", "trainDataPath": "/data/train.jsonl", "registerTo": "main.default"}
RULE = 'must be a positive number, e.g. 5e-6 or "5e-6"'


def crd_spec_schema() -> dict:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


@pytest.mark.parametrize("value", [5e-6, "5e-6", "5E-6", "0.000005", "5.0e-6", ".000005", "0000.000005"])
def test_a_number_and_its_string_parse_to_the_same_float_and_stored_form(value):
    parsed = FineTuneRunSpec.parse({**BASE, "learningRate": value})
    assert parsed.learning_rate == 5e-6 and parsed.effective_learning_rate() == 5e-6
    assert parsed.to_manifest_spec()["learningRate"] == "5e-06"


def test_an_integer_is_a_learning_rate_too():
    assert FineTuneRunSpec.parse({**BASE, "learningRate": 1}).learning_rate == 1.0


@pytest.mark.parametrize("value", [-1, 0, 0.0, "0", "0e5", "-1e-5", "+1e-5", "abc", "1e-5x", " 1e-5", "", "nan", "inf",
                                   float("nan"), float("inf"), "1e999", True, [5e-6], {"rate": 5e-6}])
def test_an_invalid_learning_rate_names_the_field(value):
    with pytest.raises(SpecError) as error:
        FineTuneRunSpec.parse({**BASE, "learningRate": value})
    (problem,) = error.value.problems
    assert str(problem).startswith(f"spec.learningRate: {RULE}")


def write_manifest(tmp_path, learning_rate: str):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: kubetune.io/v1alpha1
        kind: FineTuneRun
        metadata:
          name: r
        spec:
          model: {BASE["model"]}
          trainDataPath: {BASE["trainDataPath"]}
          registerTo: {BASE["registerTo"]}
          learningRate: {learning_rate}
        """))
    return path


@pytest.mark.parametrize("written", ["5e-6", '"5e-6"', "5.0e-6", "0.000005", "'0.000005'"])
def test_kubetune_create_f_reads_every_way_of_writing_it_the_same(tmp_path, written):
    spec, _ = spec_from_manifest(write_manifest(tmp_path, written))
    assert spec.learning_rate == 5e-6
    assert spec.to_manifest_spec()["learningRate"] == "5e-06"


@pytest.mark.parametrize("written", ["-1", '"abc"', "true"])
def test_kubetune_create_f_names_file_line_and_field(tmp_path, written):
    path = write_manifest(tmp_path, written)
    with pytest.raises(SpecError) as error:
        spec_from_manifest(path)
    assert [str(p) for p in error.value.problems][0].startswith(f"{path}:9: spec.learningRate: {RULE}")


@pytest.mark.parametrize("value", [5e-6, "5e-6"])
def test_the_sdk_sends_the_same_stored_form_for_a_float_or_a_string(value):
    assert spec_from_arguments(**{
        "model": BASE["model"], "train_data_path": BASE["trainDataPath"], "register_to": BASE["registerTo"],
        "learning_rate": value,
    }).to_manifest_spec()["learningRate"] == "5e-06"


def test_the_crd_takes_a_positive_number_or_a_positive_decimal_string():
    schema = crd_spec_schema()["properties"]["learningRate"]
    assert "type" not in schema and schema["x-kubernetes-preserve-unknown-fields"] is True
    assert (schema["minimum"], schema["exclusiveMinimum"]) == (0, True)  # numbers only
    assert schema["pattern"] == r"^([0-9]*[1-9][0-9]*\.?[0-9]*|[0-9]*\.[0-9]*[1-9][0-9]*)([eE][-+]?[0-9]+)?$"
    # Objects, arrays and booleans: no value passes these.
    assert (schema["minProperties"], schema["maxProperties"], schema["minItems"], schema["maxItems"]) == (1, 0, 1, 0)
    assert schema["not"] == {"enum": [True, False]}


def test_no_cel_rule_names_an_untyped_field():
    """CEL cannot see an untyped field: the API server refuses a CRD whose rule names one."""
    rules = " ".join(r["rule"] for r in crd_spec_schema()["x-kubernetes-validations"])
    assert "learningRate" not in rules


def test_any_number_or_string_union_becomes_the_untyped_form():
    union = {"anyOf": [{"type": "string", "pattern": "^x$"}, {"type": "number", "minimum": 1}, {"type": "null"}],
             "description": "d"}
    converted = structural(union)
    assert converted == {"description": "d", **number_or_string({"minimum": 1}, {"pattern": "^x$"})}
    assert converted["minimum"] == 1 and "exclusiveMinimum" not in converted


def test_other_unions_are_still_refused():
    with pytest.raises(ValueError, match="cannot express a union"):
        structural({"anyOf": [{"type": "integer"}, {"type": "boolean"}]})


def test_no_other_spec_field_is_a_number_written_as_a_string():
    """The same problem elsewhere: a string field whose pattern is a bare number would refuse kubectl's numbers."""
    numeric = [name for name, prop in crd_spec_schema()["properties"].items()
               if prop.get("type") == "string" and prop.get("pattern", "").startswith(("^[0-9", "^([0-9"))]
    assert numeric == []
