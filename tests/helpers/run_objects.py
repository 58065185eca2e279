"""Small factories for FineTuneRun objects as the API server returns them (for pure SDK/CLI tests)."""

from __future__ import annotations

from typing import Any

from kubetune.api import API_VERSION, KIND

DEFAULT_SPEC = {
    "model": "meta-llama/Llama-3.2-1B-Instruct",
    "trainDataPath": "pvc://datasets/chat/train.jsonl",
    "registerTo": "main.finetunes",
    "taskType": "CHAT_COMPLETION",
    "trainingDuration": "1ep",
    "validateInputs": True,
    "suspend": False,
}


def make_run(
    name: str,
    *,
    created: str = "2025-01-01T00:00:00Z",
    namespace: str = "team-a",
    phase: str | None = None,
    suspend: bool = False,
    events: list[tuple[str, str, str]] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A FineTuneRun dict; `events` are (type, time, message) triples, `status` extra status fields."""
    full_status: dict[str, Any] = dict(status or {})
    if phase:
        full_status["phase"] = phase
    if events:
        full_status["events"] = [{"type": t, "time": when, "message": msg} for t, when, msg in events]
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "creationTimestamp": created,
        "resourceVersion": "1",
        "generation": 1,
    }
    if annotations:
        metadata["annotations"] = annotations
    resource: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {**DEFAULT_SPEC, **spec, "suspend": suspend},
    }
    if full_status:
        resource["status"] = full_status
    return resource
