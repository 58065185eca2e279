"""Stopping for a preemption without losing work.

Kubernetes ends a pod with SIGTERM, then SIGKILL once its termination grace period is over (a node
drained, a pod preempted for a higher priority, an eviction). torchrun passes the SIGTERM on to its
workers and waits for them (TORCH_ELASTIC_SHUTDOWN_TIMEOUT, which the operator sets from the pool's
grace period). While loading, a worker stops at once: there is nothing to save. While training, it
finishes the step under way, and all ranks agree to stop at the same step boundary: on a multi-node
run the other nodes never see the signal, so the decision is an all-reduce (one scalar per step).
The recipe then writes a complete checkpoint and raises Preempted.
"""

import logging
import signal
import threading

import torch

from kubetune.trainer.distributed import any_rank

log = logging.getLogger("kubetune.trainer")


class Preempted(Exception):
    """The attempt stopped on SIGTERM; `checkpoint` holds everything up to `step`."""

    def __init__(self, step: int | None = None, checkpoint: str | None = None):
        self.step, self.checkpoint = step, checkpoint
        if step is None:
            super().__init__("stopped on SIGTERM while setting up; nothing to save")
        elif checkpoint:
            super().__init__(f"stopped on SIGTERM after step {step}; saved checkpoint {checkpoint}")
        else:
            super().__init__(f"stopped on SIGTERM after step {step}, which the latest checkpoint already holds")


class StopOnSigterm:
    """The SIGTERM handler of one worker: stop now while setting up, at the next step boundary once training."""

    def __init__(self) -> None:
        self.requested = False
        self._training = False

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            signal.signal(signal.SIGTERM, self._handle)

    def training_started(self) -> None:
        self._training = True

    def _handle(self, signum, frame) -> None:
        self.requested = True
        if not self._training:
            raise Preempted()
        log.warning("SIGTERM: finishing the current step, then writing a checkpoint")

    def agreed(self, device: torch.device) -> bool:
        """Collective: whether any rank was asked to stop (then every rank stops after this step)."""
        return any_rank(self.requested, device)
