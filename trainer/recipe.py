"""The fine-tuning recipe: setup → train → save, read top to bottom.

torchrun starts this on every rank (`python -m kubetune.trainer --config FILE`).
Every component lives in its own module; this file only puts them in order.
A run that finds a complete checkpoint of its own resumes from it exactly. On SIGTERM
(kubetune.trainer.preemption) it finishes the step under way, checkpoints and stops.
"""

import logging
import time
from datetime import datetime, timezone

import torch
from transformers import AutoConfig

from kubetune.api import checkpoints
from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.mlflow_checkpoints import checkpoint_mlflow_uri
from kubetune.api.progress import CheckpointRef, TrainerReport, TrainerStage
from kubetune.api.trainer_config import TrainerConfig
from kubetune.trainer import checkpoint as ckpt
from kubetune.trainer import distributed as dist_utils
from kubetune.trainer.data import DataConfig, PackedDataset, build_packed_dataset, rules_for
from kubetune.trainer.evaluate import eval_loss, generate_for_prompts
from kubetune.trainer.export import export_hf_model
from kubetune.trainer.modeling import load_model, load_tokenizer, resolve_model_source
from kubetune.trainer.optim import BatchShape, build_optimizer, build_scheduler, plan_steps
from kubetune.trainer.preemption import Preempted, StopOnSigterm
from kubetune.trainer.progress import build_reporter
from kubetune.trainer.sampler import SamplerPosition, StepSampler
from kubetune.trainer.steps import StepResult, load_micro_batch, train_step
from kubetune.trainer.tracking import DataInput, build_logger, data_input

log = logging.getLogger("kubetune.trainer")
MAX_MESSAGE_CHARS = 4000  # a report lands in the run's status: keep it well inside an object's size limit


class FineTuneRecipe:
    def __init__(self, config: TrainerConfig):
        self.config = config
        self.spec = config.spec
        self.options = config.training
        self.env = dist_utils.DistributedEnv.from_torchrun()
        self.device = dist_utils.pick_device(self.options, self.env)
        self.reporter = build_reporter(config.progress, config.run, self.env.is_main)
        self.metrics: dict[str, float] = {}
        self.progress = ckpt.TrainingProgress(seed=self.options.seed, world_size=self.env.world_size)
        self.checkpointed_step: int | None = None  # the step of the latest checkpoint (complete, or being written)
        self.pending_checkpoint: ckpt.PendingCheckpoint | None = None  # a background save not yet marked complete
        self.listed_checkpoints: set[str] = set()  # complete checkpoints this process listed under the MLflow run
        self.stop = StopOnSigterm()
        self.stop.install()

    # ---- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        if dist_utils.needs_process_group(self.env, self.device):
            dist_utils.init_process_group(self.env, self.device, self.options.collective_timeout_seconds)
        torch.manual_seed(self.options.seed)
        self.logger = build_logger(self.config, self.env.is_main)
        self.source = resolve_model_source(self.config)
        self.tokenizer = load_tokenizer(self.source)
        self.train_data, self.eval_data = self._setup_data()
        self._report(TrainerStage.DATA_VALIDATED, force=True)
        self.model = load_model(self.source, self.device, self.options)
        self.shape = BatchShape.fit(self.options, self.env.world_size, len(self.train_data))
        self.plan = plan_steps(self.spec.duration, len(self.train_data), self.train_data.tokens_per_epoch, self.shape.global_batch_size)
        self.sampler = StepSampler(len(self.train_data), self.shape, self.env.rank, self.options.seed)
        self.optimizer = build_optimizer(self.model, self.spec.effective_learning_rate(), self.options)
        self.scheduler = build_scheduler(self.optimizer, self.plan.total_steps, self.options)
        self._restore_state()
        self.progress.total_steps = self.plan.total_steps
        self.logger.log_params(self._params())
        self.logger.log_datasets(self._data_inputs())
        self._report(TrainerStage.MODEL_INITIALIZED, force=True)

    def _setup_data(self) -> tuple[PackedDataset, PackedDataset | None]:
        model_config = AutoConfig.from_pretrained(self.source.location, cache_dir=self.source.cache_dir)
        try:
            rules = rules_for(
                self.spec.model, self.spec.task_type, self.spec.context_length, tokenizer=self.tokenizer,
                folder_max=getattr(model_config, "max_position_embeddings", None),
            )
        except ValueError as error:
            raise SpecError([SpecProblem("spec.contextLength", str(error))]) from None
        paths = self.config.paths

        def data(path: str) -> PackedDataset:
            config = DataConfig.from_rules(path, rules, pvc_mount_root=paths.pvc_mount_root, dataset_root=paths.dataset_root)
            return build_packed_dataset(config, self.tokenizer, seed=self.options.seed)

        train = data(self.spec.train_data_path)
        return train, (data(self.spec.eval_data_path) if self.spec.eval_data_path else None)

    def _restore_state(self) -> None:
        """Our own latest checkpoint (a restart) wins; else customWeightsPath; else the base weights as loaded."""
        latest = checkpoints.latest_checkpoint(self.config.run_checkpoint_dir)
        if latest is not None:
            self.progress = ckpt.load_checkpoint(latest, self.model, self.optimizer, self.env)
            self.scheduler.load_state_dict(self.progress.scheduler)
            self.checkpointed_step = self.progress.step
            log.info("resumed from %s at step %d", latest, self.progress.step)
        elif self.spec.custom_weights_path:
            path = checkpoints.resolve_custom_weights(
                self.spec.custom_weights_path, self.config.paths.checkpoint_root, self.config.paths.pvc_mount_root,
                tracking_uri=self.config.mlflow_tracking_uri, namespace=self.config.run.namespace,
            )
            ckpt.load_model_weights(path, self.model)
            log.info("started from the weights of %s", path)

    # ---- train ---------------------------------------------------------------------------------

    def train(self) -> None:
        self.model.train()
        self._report(TrainerStage.TRAINING, force=True)
        self.stop.training_started()
        while self.progress.step < self.plan.total_steps:
            started = time.perf_counter()
            position = SamplerPosition.from_state_dict(self.progress.sampler)
            self.metrics["learning_rate"] = self.scheduler.get_last_lr()[0]  # the LR this step uses
            result = self._train_one_step(position)
            self._advance(position, result)
            self._log_step(result, time.perf_counter() - started)
            if self._checkpoint_due():
                self._checkpoint_and_evaluate()
            elif self.pending_checkpoint is not None and self.pending_checkpoint.written():
                self._finish_checkpoint()
            if self.stop.agreed(self.device):
                self._stop_for_preemption()

    def _train_one_step(self, position: SamplerPosition) -> StepResult:
        filler = self.sampler.epoch_order(position.epoch)[0]
        batches = [
            load_micro_batch(self.train_data, indices, filler, self.device)
            for indices in self.sampler.micro_batches(position)
        ]
        return train_step(
            self.model, self.optimizer, self.scheduler, batches, self.env.world_size, self.options.max_grad_norm, self.device,
            chunked_loss=self.options.chunked_loss,
        )

    def _advance(self, position: SamplerPosition, result: StepResult) -> None:
        following = self.sampler.advance(position)
        self.progress.step += 1
        self.progress.tokens_seen += result.real_tokens
        self.progress.sampler = following.state_dict()
        self.progress.epochs_completed = following.epoch
        self.progress.scheduler = self.scheduler.state_dict()

    def _log_step(self, result: StepResult, seconds: float) -> None:
        self.metrics.update(train_loss=result.loss, tokens_per_second=result.real_tokens / max(seconds, 1e-9))
        if self.progress.step % self.options.log_every_steps == 0 or self.progress.step == self.plan.total_steps:
            metrics = {
                "loss": result.loss,
                "learning_rate": self.metrics["learning_rate"],
                "tokens_per_second": self.metrics["tokens_per_second"],
                "tokens_seen": self.progress.tokens_seen,
                "epoch": self.plan.epoch_of(self.progress.step),
            }
            if result.grad_norm is not None:
                metrics["grad_norm"] = result.grad_norm
            self.logger.log_metrics(metrics, self.progress.step)
        self._report(TrainerStage.TRAINING)

    def _checkpoint_due(self) -> bool:
        step, every = self.progress.step, self.options.checkpoint_every_steps
        if step == self.plan.total_steps:
            return True
        return step % every == 0 if every else step % self.plan.steps_per_epoch == 0

    def _checkpoint_and_evaluate(self) -> None:
        path = self._checkpoint()
        self.logger.log_metrics({"checkpoint_step": self.progress.step}, self.progress.step)
        if self.eval_data is not None:
            self.metrics["eval_loss"] = eval_loss(self.model, self.eval_data, self.env, self.device, self.shape.micro_batch_size)
            self.logger.log_metrics({"eval_loss": self.metrics["eval_loss"]}, self.progress.step)
        if self.spec.eval_prompts:
            rows = generate_for_prompts(
                self.model, self.tokenizer, self.spec.eval_prompts, self.spec.task_type, self.device, self.env,
                seed=self.options.seed + self.progress.step, max_new_tokens=self.options.eval_max_new_tokens,
            )
            self.logger.log_generations([{**row, "step": self.progress.step, "checkpoint": path.name} for row in rows], self.progress.step)
        self._report(TrainerStage.TRAINING, force=True)

    def _checkpoint(self, background: bool | None = None):
        """A checkpoint of this step, written in the background when the options say so (the one before it
        finished first); complete (COMPLETE, `latest`) only once `_finish_checkpoint` has run."""
        self._finish_checkpoint()
        background = self.options.async_checkpoint if background is None else background
        pending = ckpt.start_checkpoint(
            self.config.run_checkpoint_dir, self.model, self.optimizer, self.progress, self.env, background=background
        )
        self.pending_checkpoint, self.checkpointed_step = pending, self.progress.step
        if not background:
            self._finish_checkpoint()
        return pending.path

    def _finish_checkpoint(self) -> None:
        """Wait for the pending checkpoint's write, then mark it complete (rank 0)."""
        if self.pending_checkpoint is None:
            return
        pending, self.pending_checkpoint = self.pending_checkpoint, None
        started = time.perf_counter()
        ckpt.finish_checkpoint(pending, self.env)
        log.info("checkpoint %s complete (waited %.2f s for its write)", pending.path.name, time.perf_counter() - started)
        self._report(TrainerStage.TRAINING, force=True)

    def _stop_for_preemption(self) -> None:
        """Every rank, at the same step: a checkpoint of this step unless the latest already holds it (no
        evaluation: the grace period is for saving), then Preempted ends the attempt."""
        saved = None
        if self.checkpointed_step != self.progress.step:
            saved = self._checkpoint(background=False).name
        self._finish_checkpoint()  # the grace period is for this: a background save of this step completes
        raise Preempted(self.progress.step, saved)

    # ---- save ----------------------------------------------------------------------------------

    def save(self) -> None:
        export_dir = export_hf_model(self.model, self.tokenizer, self.config.export_dir, self.env)
        self.export_uri = self.logger.log_export(export_dir, self.spec.task_type, self.spec.model) or str(export_dir)
        self._finish_checkpoint()  # the last checkpoint's write went on during the export
        self._report(TrainerStage.TRAIN_FINISHED, force=True)

    def fail(self, error: BaseException) -> None:
        # A checkpoint whose write has ended holds a step completed before the failure: keep it. One still being
        # written is left incomplete rather than waited for (its write may need the rank that failed).
        if self.pending_checkpoint is not None and self.pending_checkpoint.written():
            try:
                self._finish_checkpoint()
            except Exception:
                log.exception("the last checkpoint's write failed; it stays incomplete")
        message = f"{type(error).__name__}: {error}"
        self._report(TrainerStage.FAILED, force=True, message=message[:MAX_MESSAGE_CHARS])

    def report_preempted(self, preempted: Preempted) -> None:
        self._report(TrainerStage.PREEMPTED, force=True, message=str(preempted))

    def cleanup(self, outcome: str) -> None:
        """`outcome` is the MLflow run status: FINISHED, FAILED, or KILLED (preempted: the next attempt resumes it)."""
        self.reporter.flush()
        if hasattr(self, "logger"):
            self.logger.close(outcome)
        dist_utils.destroy_process_group()

    # ---- reporting -----------------------------------------------------------------------------

    def _params(self) -> dict:
        stats = self.train_data.stats
        return {
            **{f"spec.{k}": v for k, v in self.spec.to_manifest_spec().items() if k != "compute"},
            "learning_rate": self.spec.effective_learning_rate(),
            "world_size": self.env.world_size,
            "global_batch_size": self.shape.global_batch_size,
            "micro_batch_size": self.shape.micro_batch_size,
            "gradient_accumulation_steps": self.shape.accumulation_steps,
            "total_steps": self.plan.total_steps,
            "steps_per_epoch": self.plan.steps_per_epoch,
            "packed_sequences": stats.sequences,
            "packing_efficiency": round(stats.efficiency, 4),
            "truncated_examples": stats.truncated_examples,
            "device": self.device.type,
        }

    def _data_inputs(self) -> list[DataInput]:
        inputs = [data_input("training", self.spec.train_data_path, self.train_data.stats, self.train_data.example_lengths)]
        if self.eval_data is not None:
            inputs.append(data_input("evaluation", self.spec.eval_data_path, self.eval_data.stats, self.eval_data.example_lengths))
        return inputs

    def _report(self, stage: TrainerStage, force: bool = False, message: str | None = None) -> None:
        plan = getattr(self, "plan", None)
        step = self.progress.step
        report = TrainerReport(
            stage=stage,
            updated_at=datetime.now(timezone.utc),
            attempt=self.config.attempt,
            epoch=plan.epoch_of(max(step, 1)) if plan else None,
            total_epochs=plan.total_epochs if plan else None,
            step=step,
            total_steps=plan.total_steps if plan else None,
            tokens_seen=self.progress.tokens_seen,
            tokens_total=plan.tokens_total if plan else None,
            train_loss=self.metrics.get("train_loss"),
            eval_loss=self.metrics.get("eval_loss"),
            learning_rate=self.metrics.get("learning_rate"),
            tokens_per_second=self.metrics.get("tokens_per_second"),
            checkpoints=self._checkpoint_refs() if self.env.is_main else [],
            mlflow_experiment_id=getattr(getattr(self, "logger", None), "experiment_id", None),
            mlflow_run_id=getattr(getattr(self, "logger", None), "run_id", None),
            export_uri=getattr(self, "export_uri", None),
            message=message,
        )
        self.reporter.report(report, force=force)

    def _checkpoint_refs(self) -> list[CheckpointRef]:
        """Every complete checkpoint, each listed under the MLflow run once it is complete (so an asynchronous
        save is listed only after its COMPLETE marker)."""
        run_id = getattr(getattr(self, "logger", None), "run_id", None)
        refs = []
        for path in checkpoints.list_checkpoints(self.config.run_checkpoint_dir):
            epochs, step = checkpoints.parse_checkpoint_name(path.name)  # type: ignore[misc]
            created = datetime.fromtimestamp((path / checkpoints.COMPLETE_MARKER).stat().st_mtime, timezone.utc)
            refs.append(CheckpointRef(
                name=path.name, path=str(path), step=step, epoch=epochs, created_at=created,
                location=self.config.checkpoint_location(path.name),
                mlflow_uri=checkpoint_mlflow_uri(run_id, path.name) if run_id else None,
            ))
        for ref in refs if hasattr(self, "logger") else []:
            if ref.name not in self.listed_checkpoints:
                self.logger.log_checkpoint(ref)
                self.listed_checkpoints.add(ref.name)
        return refs


def run(config: TrainerConfig) -> int:
    """The whole run on this rank: 0 on success; a failure or a preemption is reported, then raised to end the process."""
    recipe = FineTuneRecipe(config)
    outcome = "FAILED"
    try:
        recipe.setup()
        recipe.train()
        recipe.save()
        outcome = "FINISHED"
        return 0
    except Preempted as preempted:
        outcome = "KILLED"
        recipe.report_preempted(preempted)
        raise
    except BaseException as error:
        recipe.fail(error)
        raise
    finally:
        recipe.cleanup(outcome)
