"""Pod admission on the real API server (issue 10): a namespace that enforces the restricted Pod Security
Standard admits every pod Kubetune makes, and when the API server refuses a run's pods (a denying admission
policy or webhook, a quota) the run says so at the next reconcile, in a condition, a Warning Event and its
message, instead of waiting without a word."""

import uuid

import pytest
from kubernetes import client as k8s

from helpers.operator_driver import example_run

pytestmark = [pytest.mark.cluster, pytest.mark.security]

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}


def failed_creates(runs) -> list[str]:
    events = runs.core.list_namespaced_event(runs.namespace, field_selector="reason=FailedCreate").items
    return [e.message for e in events]


def test_a_restricted_namespace_admits_every_pod_kubetune_makes(runs, kube_api, namespace):
    k8s.CoreV1Api(kube_api).patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    name = runs.apply(example_run("strict"))
    runs.wait_pods_running("strict-validate", 1)
    runs.finish_pods("strict-validate", 0)
    runs.wait_phase(name, "Running")
    assert len(runs.wait_pods_running("strict-train-0", 2)) == 2
    assert failed_creates(runs) == []


@pytest.fixture
def pods_denied(kube_api, namespace):
    """A ValidatingAdmissionPolicy that denies every pod of the test's namespace: what a webhook or Pod Security
    admission does to a pod it will not admit, whatever Kubetune put in it."""
    admission = k8s.AdmissionregistrationV1Api(kube_api)
    name = f"kubetune-test-deny-{uuid.uuid4().hex[:6]}"
    message = f"pods are frozen in this namespace ({name})"
    admission.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
                },
                "validations": [{"expression": "false", "message": message}],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        }
    )
    try:
        yield message
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)


def test_pods_denied_by_admission_fail_the_run_with_the_refusal(runs, pods_denied):
    # The binding takes a moment to reach the API server's admission: the first Job may still get its pod.
    name = runs.apply(example_run("denied"))
    status = runs.wait_phase(name, "Failed", timeout=90)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PodsRefused"
    assert "the API server refuses to create the validation pod of Job denied-validate" in status["message"]
    assert pods_denied in status["message"]
    # Its Job goes, so the Job controller stops trying; no training Job was ever made.
    runs.wait_for("the refused Job deleted", lambda: not runs.jobs(name), 30)
    warnings = [e for e in runs.events(name) if e.reason == "PodsRefused"]
    assert warnings and warnings[0].type == "Warning" and pods_denied in warnings[0].message


def test_pods_refused_by_quota_keep_the_run_waiting_and_say_why(runs, kube_api, namespace):
    core = k8s.CoreV1Api(kube_api)
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    core.create_namespaced_resource_quota(namespace, quota)
    runs.wait_for("the quota counted", lambda: core.read_namespaced_resource_quota("no-pods", namespace).status.hard, 30)
    name = runs.apply(example_run("quota"))

    def refused():
        status = runs.status(name)
        condition = next((c for c in status.get("conditions", []) if c["type"] == "InputsValidated"), {})
        return status if condition.get("reason") == "PodsRefused" else None

    status = runs.wait_for("the refusal in status", refused, 60)
    assert status["phase"] == "Validating"
    assert "exceeded quota" in status["message"] and status["message"].endswith("waiting until it can")
    assert any(e.reason == "PodsRefused" and e.type == "Warning" for e in runs.events(name))

    # Quota that frees up lets the same Job's pod through: the run goes on by itself.
    core.delete_namespaced_resource_quota("no-pods", namespace)
    runs.wait_pods_running("quota-validate", 1, timeout=90)
    runs.finish_pods("quota-validate", 0)
    runs.wait_phase(name, "Running", timeout=60)
