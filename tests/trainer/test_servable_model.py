"""The registered model is an MLflow model (transformers flavour): `mlflow.pyfunc.load_model` loads the
registered version and generates, and `mlflow models serve` answers a chat request over HTTP.

The local-mode run trains the quickstart with `kubetune run --local` against the session's real MLflow
server, once for this module; the other tests log the example tiny model directly (no training)."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_local_mode import REPO_ROOT, kubetune_run, small_quickstart  # the local-mode test's quickstart

from helpers.health import wait_healthy
from helpers.mlflow_server import free_port, mlflow_executable
from kubetune.api.mlflow_tags import run_tags
from kubetune.registry import ProvenanceError, register_model

pytestmark = pytest.mark.mlflow

TINY_LLAMA = REPO_ROOT / "examples" / "models" / "tiny-llama"
CHAT = {"messages": [{"role": "user", "content": "What is 16 minus 32?"}], "max_tokens": 8}
SERVE_START_TIMEOUT_S = 180


@pytest.fixture
def registry(mlflow_uri):
    """`models:/…` URIs resolve against the session's MLflow server while the test runs."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_uri)
    yield mlflow.MlflowClient(mlflow_uri)
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def local_version(tmp_path_factory, mlflow_uri) -> tuple[str, str]:
    """The quickstart trained and registered by `kubetune run --local`: (registered name, version)."""
    folder = tmp_path_factory.mktemp("servable")
    manifest = small_quickstart(folder / "project")
    text = yaml.safe_load(manifest.read_text())
    text["spec"]["registerTo"] = "main.servable.quickstart"  # apart from test_local_mode's model
    manifest.write_text(yaml.safe_dump(text, sort_keys=False))
    (folder / "state").mkdir()
    result = kubetune_run(manifest, folder / "state", mlflow_uri)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Registered model: main.servable.quickstart version 1" in result.stdout
    return "main.servable.quickstart", "1"


def logged_tiny_model(client, task_type: str, tags: dict[str, str], experiment: str | None = None) -> tuple[str, str]:
    """The example tiny model logged as its run's MLflow model, as the trainer logs its export: (run id, URI)."""
    from kubetune.trainer.mlflow_model import log_model

    experiment = experiment or client.create_experiment(f"/Users/test/servable-{tags['kubetune.run_uid']}")
    run_id = client.create_run(experiment, tags=tags).info.run_id
    uri = log_model(client, run_id, experiment, TINY_LLAMA, task_type, "tiny-llama")
    client.set_terminated(run_id)
    return run_id, uri


def answer(prediction) -> dict:
    [completion] = prediction if isinstance(prediction, list) else [prediction]
    return completion


@pytest.mark.trainer
def test_local_run_registers_a_chat_model_that_pyfunc_loads_and_generates(local_version, registry):
    import mlflow

    name, version = local_version
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    completion = answer(model.predict(CHAT))
    assert completion["object"] == "chat.completion"
    message = completion["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    # Generated at least one token and no more than asked; the template's BOS was not added twice (the
    # usage counts the prompt without special tokens, so a second BOS would count as a completion token).
    assert 1 <= completion["usage"]["completion_tokens"] <= CHAT["max_tokens"]
    assert [c.name for c in model.metadata.get_input_schema().inputs][0] == "messages"
    assert model.metadata.flavors["transformers"]["inference_task"] == "llm/v1/chat"
    assert model.metadata.saved_input_example_info is not None

    # Lineage: the version is the run's logged model; the run recorded its input datasets.
    registered = registry.get_model_version(name, version)
    assert registered.source.startswith("models:/m-")
    logged = registry.get_logged_model(registered.source.removeprefix("models:/"))
    assert logged.source_run_id == registered.run_id
    inputs = registry.get_run(registered.run_id).inputs.dataset_inputs
    contexts = {i.dataset.name: {t.key: t.value for t in i.tags}["mlflow.data.context"] for i in inputs}
    assert contexts == {"train.jsonl": "training", "eval.jsonl": "evaluation"}
    assert all(json.loads(i.dataset.profile)["examples"] > 0 for i in inputs)

    files = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    tokenizer = files / "components" / "tokenizer"
    assert (tokenizer / "chat_template.jinja").exists() or "chat_template" in (tokenizer / "tokenizer_config.json").read_text()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (files / "model").iterdir()}


def test_a_text_generation_run_serves_prompt_strings(registry, tmp_path):
    import mlflow

    tags = run_tags("ns", "pairs", f"uid-{tmp_path.name}")
    run_id, uri = logged_tiny_model(registry, "INSTRUCTION_FINETUNE", tags)
    name = f"main.servable.text_{tmp_path.name.replace('-', '_')}"
    version = register_model(registry.tracking_uri, name, uri, run_id, tags)

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    [text] = model.predict("The capital of Poland is", params={"max_new_tokens": 4})
    assert isinstance(text, str) and text and not text.startswith("The capital of Poland is")
    assert len(text) < 80  # 4 new tokens, not the default 256: the param reached the pipeline
    assert [c.type.name for c in model.metadata.get_input_schema().inputs] == ["string"]
    assert "inference_task" not in model.metadata.flavors["transformers"]


def test_only_the_runs_own_logged_model_is_registered(registry, tmp_path):
    ours = run_tags("team-a", "chat", f"uid-a-{tmp_path.name}")
    theirs = run_tags("team-b", "chat", f"uid-b-{tmp_path.name}")
    our_run, our_model = logged_tiny_model(registry, "CHAT_COMPLETION", ours)
    shared_experiment = registry.get_run(our_run).info.experiment_id  # two runs may share an experimentPath
    _, their_model = logged_tiny_model(registry, "CHAT_COMPLETION", theirs, shared_experiment)
    name = f"main.servable.own_{tmp_path.name.replace('-', '_')}"

    with pytest.raises(ProvenanceError, match="logged by MLflow run"):
        register_model(registry.tracking_uri, name, their_model, our_run, ours)
    with pytest.raises(ProvenanceError, match="no such logged model"):
        register_model(registry.tracking_uri, name, "models:/m-0123456789abcdef", our_run, ours)
    first = register_model(registry.tracking_uri, name, our_model, our_run, ours)
    again = register_model(registry.tracking_uri, name, our_model, our_run, ours)  # a retried registration
    assert first == again and first.version == "1"
    assert registry.get_model_version(name, "1").run_id == our_run


@pytest.mark.trainer
def test_mlflow_models_serve_answers_a_chat_request_over_http(local_version, mlflow_uri, tmp_path):
    name, version = local_version
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "HF_HUB_OFFLINE": "1", "PYTHONSAFEPATH": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # it execs uvicorn
    command = [*mlflow_executable(), "models", "serve", "-m", f"models:/{name}/{version}",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/ping", lambda: server.poll() is not None, lambda: log.read_text(),
                     timeout=SERVE_START_TIMEOUT_S, what="mlflow models serve")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=json.dumps(CHAT).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
            body = json.loads(response.read())
    finally:
        stop(server)
    completion = answer(body.get("predictions", body) if isinstance(body, dict) else body)
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(completion["choices"][0]["message"]["content"], str)
    assert completion["usage"]["completion_tokens"] >= 1


def stop(server: subprocess.Popen) -> None:
    import signal

    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
