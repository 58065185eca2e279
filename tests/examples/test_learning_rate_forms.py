"""learningRate as each client parses it: the real kubectl against a real API server with the generated CRD.

kubectl reads an unquoted `5e-6` as a number, a quoted one as a string; both are
accepted and stored as sent, and the operator parses either into the same float.
"""

from __future__ import annotations

import json

import pytest

from kubetune.api.spec import FineTuneRunSpec

pytestmark = pytest.mark.cluster


def manifest(name: str, learning_rate: str) -> str:
    return f"""apiVersion: kubetune.io/v1alpha1
kind: FineTuneRun
metadata:
  name: {name}
spec:
  model: meta-llama/Llama-3.2-1B-Instruct
  trainDataPath: pvc://datasets/chat/train.jsonl
  registerTo: main.default
  learningRate: {learning_rate}
"""


def apply(kubectl, namespace: str, text: str) -> str:
    return kubectl("apply", "-n", namespace, "-f", "-", input=text)


def stored_spec(kubectl, namespace: str, name: str) -> dict:
    return json.loads(kubectl("get", "-n", namespace, "finetunerun", name, "-o", "json"))["spec"]


def test_number_and_string_are_both_accepted_and_mean_the_same(kubectl, crd_installed, namespace):
    apply(kubectl, namespace, manifest("unquoted", "5e-6"))
    apply(kubectl, namespace, manifest("quoted", '"5e-6"'))
    unquoted, quoted = stored_spec(kubectl, namespace, "unquoted"), stored_spec(kubectl, namespace, "quoted")
    assert unquoted["learningRate"] == 5e-6 and quoted["learningRate"] == "5e-6"  # stored as sent
    parsed = [FineTuneRunSpec.parse(s) for s in (unquoted, quoted)]  # as the operator reads them
    assert parsed[0].learning_rate == parsed[1].learning_rate == 5e-6
    assert parsed[0].to_manifest_spec() == parsed[1].to_manifest_spec()


@pytest.mark.parametrize("value", ["-1", '"abc"', "0", '"0"', '"-1e-5"', "true", "[5e-6]", "{rate: 5e-6}"])
def test_an_invalid_learning_rate_is_refused_naming_the_field(kubectl, crd_installed, namespace, value):
    with pytest.raises(AssertionError) as refused:
        apply(kubectl, namespace, manifest("bad", value))
    assert "spec.learningRate" in str(refused.value)
    with pytest.raises(AssertionError, match="NotFound"):
        kubectl("get", "-n", namespace, "finetunerun", "bad")
