"""The trainer's word on a failure: a user error exits 2 and leaves its message, marked, as the container's
termination message, which is what reaches the operator in a pod (kubetune.api.failures)."""

import os
import signal
import time

import pytest
import torch

from kubetune.api.failures import USER_ERROR_EXIT, EndedAs, read_termination_message
from kubetune.trainer import __main__ as trainer_main
from kubetune.trainer.preemption import Preempted, StopOnSigterm

pytestmark = pytest.mark.trainer


def test_a_user_error_exits_2_with_a_marked_termination_message(tmp_path, tiny_model_dir, single_process_group,
                                                                recipe_config):
    config = recipe_config(tmp_path, tiny_model_dir("llama"), "bad-weights", customWeightsPath="/no/such/checkpoint")
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")  # what the kubelet mounts into every container
    config = config.model_copy(update={"paths": config.paths.model_copy(update={"termination_log": termination_log})})
    path = config.write(tmp_path / "trainer.json")
    assert trainer_main.main(["--config", str(path)]) == USER_ERROR_EXIT
    ended_as, message = read_termination_message(termination_log.read_text())
    assert ended_as is EndedAs.USER_ERROR and message.startswith("spec.customWeightsPath: '/no/such/checkpoint' names no complete checkpoint")


def test_outside_a_pod_nothing_is_written(tmp_path):
    trainer_main.leave_termination_message(tmp_path / "absent", "x")
    assert not (tmp_path / "absent").exists()


def test_sigterm_stops_set_up_at_once_and_training_at_the_next_step_boundary():
    """While loading there is nothing to save: stop now. While training: only note it, so the step under way
    finishes and every rank can agree to checkpoint after it."""
    stop = StopOnSigterm()
    previous = signal.getsignal(signal.SIGTERM)
    stop.install()
    try:
        with pytest.raises(Preempted, match="while setting up"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs in this thread between bytecodes, long before the sleep ends
        stop.training_started()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert stop.requested and stop.agreed(torch.device("cpu"))
    finally:
        signal.signal(signal.SIGTERM, previous)
