"""Local mode: one FineTuneRun on this machine — validate, train, follow, register.

One process (CPU, or one GPU) runs `python -m kubetune.trainer` directly, in its own process as
torchrun would start it, started before the data is validated: it imports the trainer meanwhile and
starts the run only once told `go` on its stdin. More than one process (a GPU each) runs under
torchrun, started after the validation.

State of a run lives under <state_root>/runs/<name>/ (default ./.kubetune):
    run.json           the run's identity (its uid survives re-runs, so registration stays idempotent)
    trainer.json       the TrainerConfig torchrun's processes read
    progress.json      the trainer's latest TrainerReport
    trainer.log        the trainer's output
    checkpoints/       ep{E}-ba{B} folders and `latest`
    export/            the final Hugging Face export
Re-running a run with the same name resumes from its latest checkpoint.
"""

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kubetune.api.events import EventType
from kubetune.api.locations import parse_custom_weights, parse_data_path, parse_model
from kubetune.api.progress import TrainerReport, TrainerStage
from kubetune.api.spec import FineTuneRunSpec
from kubetune.local.events import EventPrinter

LOCAL_NAMESPACE = "local"
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class LocalRun:
    name: str
    spec: FineTuneRunSpec  # with local paths already absolute
    state_root: Path
    tracking_uri: str
    artifact_root: str | None = None
    dataset_root: Path | None = None  # an offline Hugging Face dataset mirror: ROOT/org/name

    @property
    def run_dir(self) -> Path:
        return self.state_root / "runs" / self.name

    @property
    def pvc_mount_root(self) -> Path:
        """pvc://CLAIM/path is read at <state>/pvc/CLAIM/path on this machine."""
        return self.state_root.resolve() / "pvc"


@dataclass
class LocalResult:
    succeeded: bool
    report: TrainerReport | None = None
    registered_name: str | None = None
    registered_version: str | None = None
    problems: list[str] = field(default_factory=list)


def default_tracking(state_root: Path) -> tuple[str, str]:
    """MLFLOW_TRACKING_URI when set, else a SQLite store under the state folder with artifacts next to it."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None  # type: ignore[return-value]
    state_root = state_root.resolve()
    return f"sqlite:///{state_root / 'mlflow.db'}", str(state_root / "mlartifacts")


def resolve_local_paths(spec: FineTuneRunSpec, base_dir: Path) -> FineTuneRunSpec:
    """Relative model, data and checkpoint paths are relative to the manifest's folder, as a reader expects."""
    updates = {}
    for name in ("model", "train_data_path", "eval_data_path", "custom_weights_path"):
        value = getattr(spec, name)
        if value and _is_relative_local(name, value):
            updates[name] = str((base_dir / value).resolve())
    return spec.model_copy(update=updates)


_LOCATION_OF = {
    "model": parse_model,
    "train_data_path": parse_data_path,
    "eval_data_path": parse_data_path,
    "custom_weights_path": parse_custom_weights,
}


def _is_relative_local(field_name: str, value: str) -> bool:
    return _LOCATION_OF[field_name](value).kind == "local" and not value.startswith(("/", "file://"))


def process_count(spec: FineTuneRunSpec) -> int:
    """One process per GPU asked for (nodes × gpusPerNode or gpus), else one."""
    compute = spec.compute
    if compute is None:
        return 1
    if compute.gpus:
        return compute.gpus
    if compute.nodes or compute.gpus_per_node:
        return (compute.nodes or 1) * max(1, compute.gpus_per_node or 1)
    return 1


def run_uid(run_dir: Path) -> str:
    identity = run_dir / "run.json"
    if identity.exists():
        return json.loads(identity.read_text())["uid"]
    uid = str(uuid.uuid4())
    run_dir.mkdir(parents=True, exist_ok=True)
    identity.write_text(json.dumps({"uid": uid}))
    return uid


def trainer_config(run: LocalRun, uid: str):
    from kubetune.api.trainer_config import ProgressTarget, RunIdentity, TrainerConfig, TrainerPaths

    runs = run.state_root.resolve() / "runs"
    return TrainerConfig(
        run=RunIdentity(namespace=LOCAL_NAMESPACE, name=run.name, uid=uid),
        spec=run.spec,
        # <root>/<name>/checkpoints and <root>/<name>/export: both roots are the runs folder.
        paths=TrainerPaths(
            checkpoint_root=runs, output_root=runs, pvc_mount_root=run.pvc_mount_root, dataset_root=run.dataset_root
        ),
        mlflow_tracking_uri=run.tracking_uri,
        mlflow_artifact_root=run.artifact_root,
        progress=ProgressTarget(kind="file", path=runs / run.name / "progress.json", min_interval_s=1.0),
    )


def validate_data(run: LocalRun) -> list[str]:
    """Every data problem (file, line, rule) of the train and eval data, before any process starts, under
    the same rules the trainer will apply (kubetune.trainer.data.rules_for)."""
    from kubetune.api.data_rules import folder_max_context
    from kubetune.trainer.data import DataConfig, DataValidationError, load_and_validate, model_folder, rules_for
    from kubetune.trainer.modeling import ModelSource, load_tokenizer

    spec = run.spec
    folder = model_folder(spec.model, run.pvc_mount_root)
    tokenizer = load_tokenizer(ModelSource(str(folder))) if folder is not None and folder.is_dir() else None
    try:
        rules = rules_for(
            spec.model, spec.task_type, spec.context_length, tokenizer=tokenizer, folder_max=folder_max_context(folder)
        )
    except ValueError as error:
        return [f"spec.contextLength: {error}"]
    problems = []
    for path in filter(None, (spec.train_data_path, spec.eval_data_path)):
        try:
            load_and_validate(
                DataConfig.from_rules(path, rules, pvc_mount_root=run.pvc_mount_root, dataset_root=run.dataset_root)
            )
        except DataValidationError as error:
            problems.append(str(error))
    return problems


def trainer_command(config_path: Path, nproc: int) -> list[str]:
    """A single process skips torchrun's launcher (an agent process and a rendezvous, seconds of start-up)."""
    if nproc == 1:
        return [sys.executable, "-m", "kubetune.trainer", "--config", str(config_path)]
    return torchrun_command(config_path, nproc)


def torchrun_command(config_path: Path, nproc: int) -> list[str]:
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc-per-node={nproc}", "-m", "kubetune.trainer", "--config", str(config_path)]


def run_local(run: LocalRun, printer: EventPrinter, register: Callable | None = None) -> LocalResult:
    """The whole run. `register` (default kubetune.registry.register_model) is called after training succeeds."""
    printer.event(EventType.CREATED.value, f"run {run.name}: {run.spec.model} on {run.spec.train_data_path}")
    config_path = run.run_dir / "trainer.json"
    # The trainer's imports (torch, transformers: seconds) overlap the validation's own.
    waiting = _launch(run, config_path, 1, wait_for_go=True) if process_count(run.spec) == 1 else None
    try:
        if run.spec.validate_inputs:
            problems = validate_data(run)
            if problems:
                printer.event(EventType.FAILED.value, "\n".join(problems))
                return LocalResult(False, problems=problems)
        uid = run_uid(run.run_dir)
        config = trainer_config(run, uid)
        config.write(config_path)
        config.progress.path.unlink(missing_ok=True)  # type: ignore[union-attr]
        if waiting is not None:
            process, waiting = _go(waiting), None
        else:
            process = _launch(run, config_path, process_count(run.spec))
        report = _follow(run, process, config.progress.path, printer)  # type: ignore[arg-type]
    finally:
        if waiting is not None:  # never told to go (a problem, Ctrl-C): it has started nothing
            waiting.terminate()
            waiting.wait()
    if report is None or report.stage != TrainerStage.TRAIN_FINISHED:
        message = (report.message if report else None) or f"the trainer failed; see {run.run_dir / 'trainer.log'}"
        printer.event(EventType.FAILED.value, message)
        return LocalResult(False, report)
    return _register(run, uid, report, printer, register)


def _launch(run: LocalRun, config_path: Path, nproc: int, wait_for_go: bool = False) -> subprocess.Popen:
    """The trainer's process(es), their output appended to trainer.log. `wait_for_go`: one process that imports
    the trainer, then waits for `_go` before reading its configuration."""
    env = {**os.environ, "PYTHONSAFEPATH": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("OMP_NUM_THREADS", "1" if nproc > 1 else str(min(4, os.cpu_count() or 1)))
    command = trainer_command(config_path, nproc) + (["--wait-for-go"] if wait_for_go else [])
    run.run_dir.mkdir(parents=True, exist_ok=True)
    with open(run.run_dir / "trainer.log", "ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE if wait_for_go else None, env=env
        )


def _go(process: subprocess.Popen) -> subprocess.Popen:
    try:
        process.stdin.write(b"go\n")  # type: ignore[union-attr]
        process.stdin.close()  # type: ignore[union-attr]
    except BrokenPipeError:  # it ended while importing: _follow reports its exit and log
        pass
    return process


def _follow(run: LocalRun, process: subprocess.Popen, progress_path: Path, printer: EventPrinter) -> TrainerReport | None:
    nproc = process_count(run.spec)
    launcher = "the trainer (1 process)" if nproc == 1 else f"torchrun with {nproc} processes"
    printer.event(EventType.STARTED.value, f"{launcher}; log: {run.run_dir / 'trainer.log'}")
    report = None
    try:
        while process.poll() is None:
            report = _read_report(progress_path) or report
            printer.progress(report)
            time.sleep(POLL_INTERVAL_S)
    except BaseException:  # Ctrl-C or a bug here: never leave the trainer running unattended
        process.terminate()
        process.wait()
        raise
    report = _read_report(progress_path) or report
    printer.progress(report)
    printer.close()
    if process.returncode != 0 and report is not None and report.stage != TrainerStage.FAILED:
        return None
    return report


def _read_report(path: Path) -> TrainerReport | None:
    try:
        return TrainerReport.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def _register(run: LocalRun, uid: str, report: TrainerReport, printer: EventPrinter, register: Callable | None) -> LocalResult:
    from kubetune.api.mlflow_tags import run_tags
    from kubetune.registry import RegistrationError, register_model

    name = run.spec.registered_model_name(run.name)
    # A fresh SQLite store logs its schema migrations at INFO through alembic, which installs its own
    # handlers on first use (so per-logger levels set beforehand are overwritten): mute INFO meanwhile.
    logging.disable(logging.INFO)
    try:
        version = (register or register_model)(
            run.tracking_uri, name, report.export_uri, report.mlflow_run_id,
            run_tags(LOCAL_NAMESPACE, run.name, uid),
        )
    except RegistrationError as error:
        printer.event(EventType.FAILED.value, str(error))
        return LocalResult(False, report)
    finally:
        logging.disable(logging.NOTSET)
    printer.event(EventType.COMPLETED.value, f"registered {version.name} version {version.version}")
    return LocalResult(True, report, version.name, version.version)
