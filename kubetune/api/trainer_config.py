"""TrainerConfig: the one typed object that says what a trainer process does.

The operator (or the local runner) builds it from a FineTuneRunSpec, the run's
identity and the paths of the pod, and writes it as JSON or YAML; torchrun starts
`python -m kubetune.trainer --config FILE` on every node with that file. It is part
of the contract (kubetune.api): the operator writes it without importing the trainer.
"""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kubetune.api import checkpoints
from kubetune.api.failures import TERMINATION_LOG
from kubetune.api.locations import PVC_MOUNT_ROOT
from kubetune.api.spec import FineTuneRunSpec


DEFAULT_COLLECTIVE_TIMEOUT_SECONDS = 1800


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunIdentity(_Strict):
    namespace: str = "default"
    name: str
    uid: str = Field("", description="The FineTuneRun's metadata.uid (tags the MLflow run and model version).")


class TrainerPaths(_Strict):
    checkpoint_root: Path = Field(
        ..., description="Holds every run's checkpoints: <root>/<run name>/checkpoints/ep{E}-ba{B}, …/latest."
    )
    output_root: Path = Field(..., description="Holds every run's outputs: <root>/<run name>/export, metrics.jsonl.")
    checkpoint_location: str | None = Field(
        None, description="checkpoint_root as users name it (pvc://CLAIM in a cluster); None: the path itself."
    )
    pvc_mount_root: Path = Field(Path(PVC_MOUNT_ROOT), description="pvc://CLAIM/path is read at <root>/CLAIM/path.")
    dataset_root: Path | None = Field(None, description="An offline mirror of the Hugging Face hub's datasets: ROOT/org/name.")
    model_cache: Path | None = Field(None, description="Hugging Face cache for hub model ids.")
    termination_log: Path = Field(
        Path(TERMINATION_LOG), description="Where the trainer leaves its marked termination message (kubetune.api.failures)."
    )


class ProgressTarget(_Strict):
    """Where rank 0 sends TrainerReports: a JSON file (local mode, tests) or the run's report ConfigMap (cluster)."""

    kind: Literal["file", "kubernetes", "none"] = "none"
    path: Path | None = None
    config_map: str | None = Field(
        None,
        description="kind=kubernetes: the ConfigMap, in the run's namespace, whose key kubetune.api.progress.REPORT_KEY "
        "holds the report; the one object the trainer's identity may write (the operator names it).",
    )
    min_interval_s: float = Field(10.0, ge=0, description="Routine reports at most this often; stage changes always.")

    @model_validator(mode="after")
    def _destination_named(self) -> "ProgressTarget":
        if self.kind == "file" and self.path is None:
            raise ValueError("progress.kind=file needs progress.path")
        if self.kind == "kubernetes" and not self.config_map:
            raise ValueError("progress.kind=kubernetes needs progress.config_map")
        return self


class TrainingOptions(_Strict):
    """Knobs the spec does not expose; defaults suit the supported models on GPU node pools."""

    global_batch_size: int = Field(16, ge=1, description="Packed sequences per optimizer step, across all ranks.")
    micro_batch_size: int = Field(1, ge=1, description="Packed sequences per forward pass on one rank.")
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="Share of the steps spent warming up the LR.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="The LR decays (cosine) to this share of the peak.")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="Save every N optimizer steps; default: at the end of every epoch (and at the end)."
    )
    seed: int = 17
    device: Literal["auto", "cpu", "cuda"] = "auto"
    activation_checkpointing: bool | None = Field(None, description="Default: on for CUDA, off on CPU.")
    activation_checkpointing_mode: Literal["full", "selective"] = Field(
        "full",
        description="With activation checkpointing on: `full` recomputes each decoder layer in the backward pass; "
        "`selective` keeps the outputs of its matrix multiplications and attention and recomputes only the cheap "
        "operations between them (more memory, less recomputation).",
    )
    compile: bool = Field(
        False, description="torch.compile the parts of each decoder layer around its attention (norms, MLP). Off by "
        "default: on CPU it only adds compile time, and on GPUs it stays off until a benchmark shows it wins (docs/trainer.md)."
    )
    chunked_loss: bool = Field(
        True, description="Cross-entropy over chunks of loss positions, never the whole logits tensor (kubetune.trainer.loss); "
        "off: all logits of a micro-batch at once."
    )
    async_checkpoint: bool = Field(
        True, description="Write checkpoints in the background (torch.distributed.checkpoint.async_save) while training "
        "goes on; a checkpoint counts (COMPLETE, `latest`) only once its write has finished."
    )
    log_every_steps: int = Field(1, ge=1)
    eval_max_new_tokens: int = Field(100, ge=1)
    collective_timeout_seconds: int = Field(
        DEFAULT_COLLECTIVE_TIMEOUT_SECONDS,
        ge=10,
        description="A collective (NCCL, gloo) unfinished after this long ends the process instead of hanging it "
        "(a lost or hung peer); long enough for the slowest collective, a checkpoint of the largest model.",
    )


class TrainerConfig(_Strict):
    run: RunIdentity
    spec: FineTuneRunSpec
    paths: TrainerPaths
    mlflow_tracking_uri: str | None = Field(None, description="None: no MLflow logging.")
    mlflow_artifact_root: str | None = Field(
        None, description="Artifact location for a new experiment (local mode keeps artifacts next to its SQLite store)."
    )
    progress: ProgressTarget = Field(default_factory=ProgressTarget)
    training: TrainingOptions = Field(default_factory=TrainingOptions)
    attempt: int = Field(0, ge=0, description="The training attempt (restarts plus preemptions so far); echoed in every report.")

    @property
    def run_checkpoint_dir(self) -> Path:
        return checkpoints.run_checkpoint_dir(self.paths.checkpoint_root, self.run.name)

    def checkpoint_location(self, name: str) -> str:
        """Where checkpoint `name` of this run is, as users name it (status, get_checkpoints, MLflow)."""
        folder = self.run_checkpoint_dir / name
        if self.paths.checkpoint_location is None:
            return str(folder)
        return f"{self.paths.checkpoint_location.rstrip('/')}/{folder.relative_to(self.paths.checkpoint_root)}"

    @property
    def run_output_dir(self) -> Path:
        return checkpoints.run_output_dir(self.paths.output_root, self.run.name)

    @property
    def export_dir(self) -> Path:
        return self.run_output_dir / checkpoints.EXPORT_FOLDER

    @property
    def metrics_file(self) -> Path:
        return self.run_output_dir / checkpoints.METRICS_FILE

    def experiment_path(self) -> str:
        return self.spec.resolved_experiment_path(self.run.namespace, self.run.name)

    def dump(self) -> str:
        return self.model_dump_json(indent=2, by_alias=False)

    def write(self, path: Path) -> Path:
        Path(path).write_text(self.dump())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "TrainerConfig":
        """JSON or YAML (JSON is YAML): the file the training pod mounts from its own annotation."""
        return cls.parse(Path(path).read_text())

    @classmethod
    def parse(cls, text: str) -> "TrainerConfig":
        return cls.model_validate(yaml.safe_load(text))
