"""The operator's configuration: node pools, images, MLflow, checkpoint storage, defaults, Kueue.

Read from a YAML file (`kubetune operator --config FILE`); the Helm chart renders
it from values into a ConfigMap. Secrets appear only as references.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubetune.api.databricks_locations import DatabricksLocations
from kubetune.api.locations import Location, parse_model
from kubetune.api.pod_template_rules import PRIORITY_RULE, SYSTEM_PRIORITY_PREFIX
from kubetune.api.redaction import carries_credentials, redact
from kubetune.api.spec import DEFAULT_EXPERIMENT_ROOT, DNS_LABEL_PATTERN, problems_from
from kubetune.api.trainer_config import DEFAULT_COLLECTIVE_TIMEOUT_SECONDS
from kubetune.operator.access_rules import Access


class _Config(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Toleration(_Config):
    key: str | None = None
    operator: str = Field("Equal", pattern="^(Equal|Exists)$")
    value: str | None = None
    effect: str | None = Field(None, pattern="^(NoSchedule|PreferNoSchedule|NoExecute)$")
    toleration_seconds: int | None = None


class NodePool(_Config):
    """A group of identical nodes the training pods can be placed on."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    gpus_per_node: int = Field(0, ge=0, le=64, description="0 for a CPU pool (trains over gloo).")
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str | None = Field(None, description="CPU request per training pod, e.g. '90'.")
    memory: str | None = Field(None, description="Memory request per training pod, e.g. '900Gi'.")
    shared_memory: str = Field("16Gi", description="Size of /dev/shm (an in-memory emptyDir) for dataloaders and NCCL.")
    gpu_memory_gib: float | None = Field(
        None,
        gt=0,
        alias="gpuMemoryGiB",
        description="Memory of one GPU of the pool (80 for an H100 80GB). Set, the operator plans each run's memory "
        "before requesting GPUs (kubetune.api.memory_plan): a run that cannot fit fails DoesNotFit saying how many "
        "nodes it needs, and a run that leaves the node count open gets the fewest nodes that fit.",
    )
    price_per_gpu_hour: float | None = Field(
        None,
        ge=0,
        description="What one GPU of the pool costs per hour, in any currency: set, each run's status.usage carries "
        "its estimated cost (GPU-seconds / 3600 x this price).",
    )
    storage_credentials_secret: str | None = Field(
        None,
        pattern=DNS_LABEL_PATTERN,
        description="A Secret in the run's namespace whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_ENDPOINT_URL, …) become the environment of the run's validation and training pods, for object-store "
        "inputs. A run's spec.storageCredentials.secretName adds its own, whose keys win. Never read by the operator.",
    )
    termination_grace_period_seconds: int = Field(
        300,
        ge=30,
        le=86400,
        description="How long a training pod has between SIGTERM (preemption, eviction, drain) and SIGKILL: the trainer "
        "finishes its step and writes a checkpoint in this time. Size it to the pool's largest checkpoint; on spot or "
        "preemptible nodes it cannot exceed the notice the provider gives.",
    )


class Images(_Config):
    trainer: str = "ghcr.io/kubetune/trainer:0.1.0"
    pull_policy: str = Field("IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    pull_secrets: list[str] = Field(default_factory=list, description="Names of image pull Secrets in the run's namespace.")


class MlflowConfig(_Config):
    tracking_uri: str = Field(..., min_length=1)
    registry_uri: str | None = None
    credentials_secret: str | None = Field(
        None,
        pattern=DNS_LABEL_PATTERN,
        description="A Secret in the run's namespace whose keys (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD, or cloud credentials) become the trainer's environment. Never read by the operator.",
    )
    operator_credentials_secret: str | None = Field(
        None,
        description="The same for the operator's own registration calls, mounted into the operator pod by the chart.",
    )

    @field_validator("tracking_uri", "registry_uri")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        """The URI reaches the trainer's ConfigMap, conditions and logs; credentials go by Secret reference."""
        if value is not None and carries_credentials(value):
            raise ValueError(
                f"{redact(value)} carries credentials (user:password@ or a token in the query): put them in the "
                "Secrets named by credentialsSecret (the trainer) and operatorCredentialsSecret (the operator) as "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
            )
        return value


class CheckpointStorage(_Config):
    """A ReadWriteMany claim in each run's namespace; runs write under <mountPath>/<run name>/."""

    claim_name: str = Field("kubetune-checkpoints", pattern=DNS_LABEL_PATTERN)
    mount_path: str = "/checkpoints"
    create_claim: bool = Field(False, description="Create the claim when missing (never deleted with a run).")
    storage_class_name: str | None = None
    size: str = "1Ti"


class HuggingFaceDatasets(_Config):
    """Where runs read Hugging Face datasets (org/name/split) when the cluster does not reach the hub, or should not."""

    mirror: str | None = Field(
        None,
        description="pvc://CLAIM/path of an offline mirror in each run's namespace: <path>/org/name holds the dataset "
        "(its files as on the hub, or a save_to_disk folder). Mounted read-only into the validation and training pods.",
    )
    offline: bool = Field(
        False,
        description="Never ask the hub (HF_HUB_OFFLINE and HF_DATASETS_OFFLINE in the pods): a dataset missing from "
        "the mirror fails validation at once instead of after the hub's timeouts.",
    )

    @field_validator("mirror")
    @classmethod
    def _a_claim(cls, value: str | None) -> str | None:
        if value is not None and parse_model(value).kind != "pvc":  # a folder, parsed as a model folder is
            raise ValueError("must be pvc://CLAIM/path: a claim in each run's namespace holding <path>/org/name")
        return value

    def mirror_location(self) -> Location | None:
        return parse_model(self.mirror) if self.mirror else None

    def dataset_root(self) -> str | None:
        """Where the mirror is in a pod."""
        location = self.mirror_location()
        return str(location.local_path()) if location else None

    def env(self) -> list[dict[str, str]]:
        return [{"name": n, "value": "1"} for n in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")] if self.offline else []


class Kueue(_Config):
    """How runs' Jobs go through Kueue (docs/operator-guide.md, "Kueue"). A Job with a queue is created suspended
    with Kueue's labels; Kueue admits it by unsuspending it, and may suspend it again to preempt it."""

    queue_name: str | None = Field(None, description="Default LocalQueue; a run's own kueue.x-k8s.io/queue-name label wins.")
    queue_validation: bool = Field(
        True,
        description="Queue the validation Job too (it asks for the validation pool's CPU and memory, so the "
        "ClusterQueue needs quota for them); false: it runs at once, outside Kueue.",
    )
    priority_class_name: str | None = Field(
        None, description="Default WorkloadPriorityClass; a run's own kueue.x-k8s.io/priority-class label wins."
    )
    allowed_priority_classes: list[str] = Field(
        default_factory=list,
        description="WorkloadPriorityClasses a run's kueue.x-k8s.io/priority-class label may name; empty: none "
        "(only priorityClassName applies).",
    )
    discovery_interval_seconds: float = Field(
        300.0, gt=0, description="How long the operator trusts its last look for Kueue's API group (kueue.x-k8s.io)."
    )


class RestartBackoff(_Config):
    """The wait before a failed attempt's successor starts: initialSeconds after the first failure, doubling
    after each further one up to maxSeconds. Preempted attempts resume without waiting."""

    initial_seconds: float = Field(30.0, ge=0)
    max_seconds: float = Field(600.0, ge=0)


class Defaults(_Config):
    pool: str = Field(..., pattern=DNS_LABEL_PATTERN)
    validation_pool: str | None = Field(None, description="Pool for the data-validation step; default: `pool`.")
    max_restarts: int = Field(3, ge=0, description="Retry budget: training attempts after the first (a run's spec.maxRestarts wins).")
    max_restarts_limit: int = Field(10, ge=0, description="The largest spec.maxRestarts a run may ask for.")
    stall_timeout_seconds: int = Field(
        1800, ge=1, description="A Running run without a new step for this long is Stalled (a run's spec.stallTimeoutSeconds wins)."
    )
    restart_stalled: bool = Field(
        False, description="Restart a Stalled run's pods from its latest checkpoint (counted against its retry budget)."
    )
    restart_backoff: RestartBackoff = Field(default_factory=RestartBackoff)
    collective_timeout_seconds: int = Field(
        DEFAULT_COLLECTIVE_TIMEOUT_SECONDS,
        ge=10,
        description="A collective (NCCL, gloo) unfinished after this long ends the trainer instead of hanging on a lost "
        "or hung peer; the run then resumes as after any failure. Long enough for a checkpoint of the largest model.",
    )
    experiment_root: str = DEFAULT_EXPERIMENT_ROOT


class Reconcile(_Config):
    """How often the operator looks at its runs; tests shorten these."""

    resync_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="Safety net: each active run is reconciled at least this often. Changes of a run and of its Jobs "
        "and pods are reconciled at once; this catches anything missed (e.g. while the operator was down).",
    )
    registration_backoff_seconds: float = Field(5.0, gt=0, description="First retry delay while MLflow is unavailable.")
    registration_backoff_max_seconds: float = Field(300.0, gt=0, description="Longest retry delay (doubling backoff).")
    registration_timeout_seconds: float = Field(
        60.0, gt=0, description="A registration call that has not answered by then counts as MLflow being unavailable."
    )


class PodTemplatePolicy(_Config):
    """What runs' compute.podTemplate may use that depends on the cluster (the rest is a fixed allow-list)."""

    allowed_priority_classes: list[str] = Field(
        default_factory=list,
        description="PriorityClasses a run's podTemplate.spec.priorityClassName may name; empty: none. "
        "system-node-critical and system-cluster-critical are never allowed.",
    )

    @field_validator("allowed_priority_classes")
    @classmethod
    def _no_system_classes(cls, value: list[str]) -> list[str]:
        if any(name.startswith(SYSTEM_PRIORITY_PREFIX) for name in value):
            raise ValueError(PRIORITY_RULE)
        return value


class OperatorConfig(_Config):
    pools: dict[str, NodePool]
    defaults: Defaults
    images: Images = Field(default_factory=Images)
    mlflow: MlflowConfig
    checkpoints: CheckpointStorage = Field(default_factory=CheckpointStorage)
    kueue: Kueue = Field(default_factory=Kueue)
    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch; empty: the whole cluster.")
    reconcile: Reconcile = Field(default_factory=Reconcile)
    pod_template: PodTemplatePolicy = Field(default_factory=PodTemplatePolicy)
    access: Access = Field(
        default_factory=Access,
        description="Which registerTo targets and MLflow experiments each namespace may use (access_rules).",
    )
    huggingface_datasets: HuggingFaceDatasets = Field(default_factory=HuggingFaceDatasets)
    databricks: DatabricksLocations = Field(
        default_factory=DatabricksLocations,
        description="Unity Catalog volumes and tables mapped to the cluster's storage (kubetune.api.databricks_locations); "
        "a run naming an unmapped one is refused before anything runs.",
    )

    @model_validator(mode="after")
    def _defaults_name_pools(self) -> "OperatorConfig":
        for field, pool in (("defaults.pool", self.defaults.pool), ("defaults.validationPool", self.defaults.validation_pool)):
            if pool is not None and pool not in self.pools:
                raise ValueError(f"{field} {pool!r} is not one of the configured pools {sorted(self.pools)}")
        return self

    @classmethod
    def load(cls, path: Path) -> "OperatorConfig":
        """Read and validate a config file; errors name the file and every bad field."""
        try:
            data: Any = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: cannot read operator configuration: {error}") from None
        try:
            return cls.model_validate(data or {})
        except ValidationError as error:
            problems = "\n".join(f"  - {p}" for p in problems_from(error, "config"))
            raise ConfigError(f"{path}: invalid operator configuration:\n{problems}") from None


class ConfigError(ValueError):
    """The operator's configuration cannot be used; the operator refuses to start."""
