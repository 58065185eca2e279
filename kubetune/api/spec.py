"""FineTuneRun.spec: the fields of Databricks' foundation_model.create(), camelCase in YAML.

Field descriptions here become the CRD's descriptions (`kubetune crd`).
"""

import math
import re
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError, WithJsonSchema, field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from kubetune.api import supported_models
from kubetune.api.identifiers import DNS_LABEL_PATTERN, DNS_LABEL_RULE, IDENTIFIER
from kubetune.api.locations import (
    DatabricksMapping, Location, classify_data_path, parse_custom_weights, parse_data_path, parse_model,
)
from kubetune.api.data_rules import resolve_context_length
from kubetune.api.duration import DURATION_PATTERN, DURATION_RULE, TrainingDuration
from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.pod_template import PodTemplate
from kubetune.api.redaction import CREDENTIALS_RULE, carries_credentials, redact

DEFAULT_EXPERIMENT_ROOT = "/Users"
REGISTER_TO_PATTERN = rf"^{IDENTIFIER}\.{IDENTIFIER}(\.{IDENTIFIER})?$"
REGISTER_TO_RULE = (
    "must be <catalog>.<schema> or <catalog>.<schema>.<name>, each part starting with a letter or "
    "underscore and holding only letters, digits and underscores"
)
# A positive decimal (a non-zero digit somewhere in the mantissa), optionally with an exponent: the string form.
LEARNING_RATE_PATTERN = r"^([0-9]*[1-9][0-9]*\.?[0-9]*|[0-9]*\.[0-9]*[1-9][0-9]*)([eE][-+]?[0-9]+)?$"
LEARNING_RATE_RULE = "must be a positive number, e.g. 5e-6 or \"5e-6\""
# Paths and URIs, stored in the run and the trainer's ConfigMap: credentials in them are refused (the CRD has a
# CEL rule for each, kubetune.api.crd).
URI_FIELDS = ("model", "trainDataPath", "evalDataPath", "customWeightsPath")


def parse_learning_rate(value: Any) -> float:
    """A learning rate as YAML/JSON clients send it: a number (kubectl reads `5e-6` as one) or a string (PyYAML
    reads `5e-6` as one; Kubernetes API conventions prefer strings to floats). Both mean the same float."""
    if isinstance(value, str) and re.fullmatch(LEARNING_RATE_PATTERN, value):
        value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise ValueError(LEARNING_RATE_RULE)


# Validated as a float; stored by Kubetune's clients as the shortest string that reads back as it ("5e-06").
# The CRD accepts a number or such a string (kubetune.api.crd turns this anyOf into a structural schema).
LearningRate = Annotated[
    float,
    BeforeValidator(parse_learning_rate),
    PlainSerializer(repr, return_type=str, when_used="json"),
    WithJsonSchema({"anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": LEARNING_RATE_PATTERN},
    ]}),
]


class TaskType(str, Enum):
    CHAT_COMPLETION = "CHAT_COMPLETION"
    INSTRUCTION_FINETUNE = "INSTRUCTION_FINETUNE"
    CONTINUED_PRETRAIN = "CONTINUED_PRETRAIN"

    def __str__(self) -> str:  # the default (unvalidated) is the member: commands and YAML need its value
        return self.value


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True)


class Compute(_CamelModel):
    """Where and how wide the run trains: a node pool from the operator configuration and its size."""

    pool: str | None = Field(
        None,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="A node pool named in the operator configuration (node selector, tolerations, GPUs per node). "
        "Default: the configuration's default pool.",
    )
    gpus: int | None = Field(
        None, ge=0, description="Total GPUs; the operator spreads them over whole nodes of the pool. 0 trains on CPU."
    )
    nodes: int | None = Field(None, ge=1, le=1024, description="Number of nodes (one training pod per node).")
    gpus_per_node: int | None = Field(None, ge=0, le=64, description="GPUs per node; default: the pool's GPUs per node.")
    pod_template: PodTemplate | None = Field(
        None,
        description="For experts: additions to the training pods, within an allow-list: labels, annotations, "
        "affinity and tolerations within the pool, env, envFrom, volumes of safe kinds and their mounts on the "
        "trainer container, image pull Secrets, an allowed priority class. Everything else is refused, naming the "
        "field; Kubetune's security context, placement, env and mounts always stay.",
    )

    @model_validator(mode="after")
    def _gpus_or_nodes(self) -> "Compute":
        if self.gpus is not None and (self.nodes is not None or self.gpus_per_node is not None):
            raise ValueError("set either gpus, or nodes and gpusPerNode, not both")
        return self


class StorageCredentials(_CamelModel):
    """Object-store credentials by Secret reference: the operator never reads the Secret."""

    secret_name: str = Field(
        ...,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="A Secret in the run's namespace whose keys become environment variables of the validation "
        "and training pods, for fsspec and delta-rs: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, "
        "AWS_ENDPOINT_URL, AWS_REGION (s3://); AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME and "
        "AZURE_STORAGE_ACCOUNT_KEY (abfs[s]://); GOOGLE_SERVICE_ACCOUNT_KEY, a service-account key file's JSON "
        "(gs://). Its keys win over the pool's storage Secret.",
    )


class FineTuneRunSpec(_CamelModel):
    """What to fine-tune, on which data, for how long, and where to register the result."""

    model: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        description="The base model: a supported model name (e.g. meta-llama/Llama-3.2-3B-Instruct) or the path "
        "or URI of a Hugging Face model folder.",
    )
    train_data_path: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        description="Training data: a JSONL file or folder at pvc://CLAIM/path, s3://, gs://, abfs://, a local path, "
        "a Hugging Face dataset org/name/split (or name/split), or a Delta table folder; a Unity Catalog volume "
        "path (dbfs:/Volumes/... or /Volumes/...) or table (catalog.schema.table) that the operator configuration "
        "maps (databricks.volumes, databricks.tables); an unmapped one is refused before anything runs.",
    )
    register_to: str = Field(
        ...,
        pattern=REGISTER_TO_PATTERN,
        description="<catalog>.<schema> or <catalog>.<schema>.<name>: the registered model's name in MLflow; "
        "without a name, the run's name is used. The operator configuration says which catalogs and schemas each "
        "namespace may use (access; by default a schema named after the namespace, team-a: *.team_a).",
    )
    task_type: TaskType = Field(TaskType.CHAT_COMPLETION, description="What the data teaches.")
    eval_data_path: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="Evaluation data, in the same forms as trainDataPath.",
    )
    eval_prompts: list[str] | None = Field(
        None,
        max_length=64,
        description="Prompts generated at every checkpoint (max_new_tokens 100, temperature 1, top_k 50, top_p 0.95) "
        "and logged to MLflow as the table `generations`.",
    )
    custom_weights_path: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="Start from an earlier run's checkpoint: a checkpoint folder (…/ep2-ba300), a run's `latest`, "
        "an earlier run's name, or the checkpoint as MLflow lists it (runs:/RUN_ID/checkpoints/ep2-ba300; "
        "runs:/RUN_ID for its latest).",
    )
    training_duration: str = Field(
        "1ep", pattern=DURATION_PATTERN, description="How long to train: Nep (epochs), Ntok (tokens) or Nba (batches)."
    )
    learning_rate: LearningRate | None = Field(
        None,
        description="Peak learning rate (AdamW with warm-up), a positive number or the same as a string: 5e-6 or "
        "\"5e-6\". Default: the model's. Kept as written; kubetune and the SDK write the string \"5e-06\".",
    )
    context_length: int | None = Field(
        None,
        ge=1,
        description="Truncation and packing length in tokens. Default: min(8192, the model's maximum). "
        "Larger than the model's maximum is an error.",
    )
    validate_inputs: bool = Field(
        True, description="Check access to every input path and the data's format before asking for GPUs."
    )
    experiment_path: str | None = Field(
        None,
        min_length=1,
        description="MLflow experiment. Default: /Users/<namespace>/<run name>. The operator configuration says "
        "which experiment paths each namespace may use (access; by default under /Users/<namespace>/).",
    )
    compute: Compute | None = Field(None, description="Node pool and size. Default: the operator's default pool.")
    max_restarts: int | None = Field(
        None,
        ge=0,
        description="Retry budget: training attempts after the first, each resuming from the latest checkpoint "
        "(a failed, evicted or deleted attempt counts; a user error is not retried). Default and maximum: the "
        "operator configuration's.",
    )
    stall_timeout_seconds: int | None = Field(
        None,
        ge=1,
        description="A Running run whose training step has not advanced for this long gets the Stalled condition "
        "(and, where the operator is configured to, a restart from its latest checkpoint). Default: the operator's.",
    )
    storage_credentials: StorageCredentials | None = Field(
        None,
        description="Credentials for the run's object-store inputs (s3://, gs://, abfs[s]://), by Secret reference; "
        "default: the pool's storage Secret from the operator configuration, if any.",
    )
    suspend: bool = Field(
        False, description="True stops the run's pods and keeps its checkpoints (this is how a run is cancelled)."
    )

    @field_validator(*(to_snake(f) for f in URI_FIELDS))
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        if value is not None and carries_credentials(value):
            raise ValueError(CREDENTIALS_RULE)
        return value

    @field_validator("model")
    @classmethod
    def _model_form(cls, value: str) -> str:
        parse_model(value)
        return value

    @field_validator("custom_weights_path")
    @classmethod
    def _custom_weights_form(cls, value: str | None) -> str | None:
        if value is not None:
            parse_custom_weights(value)
        return value

    @field_validator("train_data_path", "eval_data_path")
    @classmethod
    def _data_path_form(cls, value: str | None) -> str | None:
        if value is not None:
            classify_data_path(value)  # a Unity Catalog form is mapped (or refused) where the mapping is known
        return value

    @model_validator(mode="after")
    def _context_within_model(self) -> "FineTuneRunSpec":
        resolve_context_length(self.context_length, self.model)
        return self

    # Derived values the operator and trainer share.

    @property
    def duration(self) -> TrainingDuration:
        return TrainingDuration.parse(self.training_duration)

    @property
    def model_info(self) -> supported_models.ModelInfo | None:
        return supported_models.lookup(self.model)

    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        info = self.model_info
        return info.default_learning_rate if info else supported_models.FALLBACK_LEARNING_RATE

    def effective_context_length(self, model_max: int | None = None) -> int:
        """contextLength, else min(8192, the model's maximum); model_max is for models outside the table."""
        return resolve_context_length(self.context_length, self.model, model_max)

    def input_locations(self, mapping: DatabricksMapping | None = None) -> dict[str, Location]:
        """Every input the run reads, by camelCase field: what pods must mount and validation must check."""
        found = {"model": parse_model(self.model), "trainDataPath": parse_data_path(self.train_data_path, mapping)}
        if self.eval_data_path:
            found["evalDataPath"] = parse_data_path(self.eval_data_path, mapping)
        if self.custom_weights_path:
            found["customWeightsPath"] = parse_custom_weights(self.custom_weights_path)
        return found

    def resolved_experiment_path(self, namespace: str, run_name: str, root: str = DEFAULT_EXPERIMENT_ROOT) -> str:
        """experimentPath, else <root>/<namespace>/<run name> (Databricks' /Users/<user>/<run> shape)."""
        return self.experiment_path or f"{root.rstrip('/')}/{namespace}/{run_name}"

    def registered_model_name(self, run_name: str) -> str:
        """The full three-part name; a two-part registerTo takes the run's name (made a valid identifier)."""
        if self.register_to.count(".") == 2:
            return self.register_to
        return f"{self.register_to}.{re.sub(r'[^A-Za-z0-9_]', '_', run_name)}"

    def to_manifest_spec(self) -> dict[str, Any]:
        """The camelCase dict for a FineTuneRun manifest, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def parse(cls, data: dict[str, Any], field_prefix: str = "spec") -> "FineTuneRunSpec":
        """Validate a camelCase (or snake_case) spec; every problem comes back in one SpecError."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise SpecError(problems_from(error, field_prefix)) from None


_RULES = {
    "missing": "is required",
    "extra_forbidden": "is not a FineTuneRun field",
}


def problems_from(error: ValidationError, field_prefix: str) -> list[SpecProblem]:
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        field = ".".join([field_prefix, *(to_camel(p) if not p.isdigit() else p for p in loc)])
        rule = _RULES.get(item["type"]) or _rule_text(item)
        value = None if item["type"] == "missing" else item.get("input")
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
            value = None  # a whole object is noise in a one-line problem
        elif isinstance(value, str):
            value = redact(value)  # problems reach conditions, Events and logs
        problems.append(SpecProblem(field, rule, value))
    return problems


def _rule_text(item: dict[str, Any]) -> str:
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "string_pattern_mismatch":
        field = to_camel(str(item["loc"][-1])) if item["loc"] else ""
        known = {
            "registerTo": REGISTER_TO_RULE,
            "trainingDuration": DURATION_RULE,
            "pool": DNS_LABEL_RULE,
        }
        return known.get(field, message)
    return message
