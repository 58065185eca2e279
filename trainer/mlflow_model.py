"""The final export as an MLflow model: the transformers flavour written around the folder export.py wrote.

`mlflow.transformers.log_model` would either load the whole model (a pipeline) or copy the folder into a
temporary one (and, given a folder, MLflow 3.17 fails under transformers 5: `check_task` names the
pipeline class by string). Neither suits a model written shard by shard, so the MLmodel and the small files
around it are written here, in the layout the flavour loads:

    MLmodel, input_example.json, serving_input_example.json, requirements.txt, conda.yaml, python_env.yaml
    model/                  the export, uploaded from where export.py wrote it (never copied, never loaded)
    components/tokenizer/   the tokenizer, with the chat template the run trained with

uploaded as the MLflow run's one logged model (`models:/<model_id>`), which registration registers.
"""

import json
import tempfile
from pathlib import Path

from kubetune.api.spec import TaskType
from kubetune.trainer.data.formatting import FALLBACK_CHAT_TEMPLATE

MODEL_NAME = "model"  # the logged model's name; one per MLflow run, reused when a run exports again
CHAT_TASK = "llm/v1/chat"  # OpenAI-style messages in, a chat completion out
TEXT_TASK = "text-generation"  # a prompt string in, the generated text out
DEFAULT_MAX_NEW_TOKENS = 256  # a request's max_tokens (chat) or max_new_tokens param overrides it
CHAT_EXAMPLE = {"messages": [{"role": "user", "content": "What is the capital of Poland?"}], "max_tokens": 32}
TEXT_EXAMPLE = "The capital of Poland is"


def inference_task(task_type: str) -> str:
    """Chat runs serve chat completions; instruction and continued-pretraining runs serve text generation."""
    return CHAT_TASK if TaskType(task_type) is TaskType.CHAT_COMPLETION else TEXT_TASK


def write_model_files(export_dir: Path, folder: Path, task_type: str, model_name: str):
    """Everything of the MLflow model but its `model/` folder (the export itself) into `folder`; returns
    the mlflow.models.Model written as folder/MLmodel. Only the tokenizer is loaded, never the weights."""
    import transformers
    from mlflow.models import Model, ModelSignature
    from mlflow.models.utils import _save_example
    from mlflow.pyfunc import add_to_model
    from mlflow.transformers.flavor_config import FlavorKey
    from mlflow.transformers.llm_inference_utils import infer_signature_from_llm_inference_task
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    task = inference_task(task_type)
    tokenizer = transformers.AutoTokenizer.from_pretrained(export_dir)
    if task == CHAT_TASK and not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE  # what the run's chat data was formatted with
    tokenizer.save_pretrained(folder / "components" / "tokenizer")

    model = Model()
    if task == CHAT_TASK:
        model.signature = infer_signature_from_llm_inference_task(CHAT_TASK)
        model.metadata = {"task": CHAT_TASK}
        example = CHAT_EXAMPLE
        # The chat template already holds the BOS: the pipeline must not add a second one.
        model_config = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, "add_special_tokens": False}
    else:
        model.signature = ModelSignature(
            Schema([ColSpec(DataType.string)]), Schema([ColSpec(DataType.string)]),
            params=ParamSchema([ParamSpec("max_new_tokens", DataType.long, DEFAULT_MAX_NEW_TOKENS)]),  # pyfunc drops unlisted params
        )
        example = TEXT_EXAMPLE
        model_config = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, "return_full_text": False}
    _save_example(model, example, str(folder))

    architectures = json.loads((Path(export_dir) / "config.json").read_text())["architectures"]
    flavor = {
        FlavorKey.TASK: TEXT_TASK,  # both tasks run the text-generation pipeline
        FlavorKey.INSTANCE_TYPE: "TextGenerationPipeline",
        FlavorKey.MODEL_TYPE: architectures[0],
        FlavorKey.MODEL_NAME: model_name,
        FlavorKey.MODEL_BINARY: "model",
        FlavorKey.COMPONENTS: [FlavorKey.TOKENIZER],
        FlavorKey.COMPONENT_TYPE.format(FlavorKey.TOKENIZER): type(tokenizer).__name__,
    }
    if task == CHAT_TASK:
        flavor["inference_task"] = CHAT_TASK
    model.add_flavor("transformers", transformers_version=transformers.__version__, code=None, **flavor)
    add_to_model(model, loader_module="mlflow.transformers", conda_env="conda.yaml", python_env="python_env.yaml",
                 model_config=model_config)
    _write_environment(folder)
    model.save(str(folder / "MLmodel"))
    return model


def _write_environment(folder: Path) -> None:
    """The pinned packages the model loads with (for `mlflow models serve` with a virtualenv or conda)."""
    from importlib.metadata import version

    import yaml
    from mlflow.utils.environment import _mlflow_conda_env, _PythonEnv

    # The local version label (torch's +cu132) names a wheel index, not a release pip finds.
    requirements = [f"{name}=={version(name).split('+')[0]}" for name in ("mlflow", "transformers", "torch")]
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (folder / "conda.yaml").write_text(yaml.safe_dump(_mlflow_conda_env(additional_pip_deps=requirements)))
    _PythonEnv.current().to_yaml(str(folder / "python_env.yaml"))


def log_model(client, run_id: str, experiment_id: str, export_dir: Path, task_type: str, model_name: str) -> str:
    """The export as the run's logged model (the one it logged before when it exports again, so registration
    stays idempotent); returns its URI, `models:/<model_id>`."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    logged = _logged_model_of(client, run_id, experiment_id)
    if logged is None:
        logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id, model_type="transformers")
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])  # the run's output, in its lineage
    with tempfile.TemporaryDirectory(prefix="mlflow-model-") as staging:
        model = write_model_files(export_dir, Path(staging), task_type, model_name)
        model.model_id = model.model_uuid = logged.model_id
        model.run_id, model.artifact_path = run_id, logged.artifact_location
        model.save(str(Path(staging) / "MLmodel"))
        client.log_model_artifacts(logged.model_id, staging)
    client.log_model_artifacts(logged.model_id, str(export_dir), "model")
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"models:/{logged.model_id}"


def _logged_model_of(client, run_id: str, experiment_id: str):
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'", max_results=1
    )
    return found[0] if found else None
