"""The trainer's word on a failure: a user error exits 2 and leaves its message, marked, as the container's
termination message, which is what reaches the operator in a pod (kubetune.api.failures)."""

import pytest

from kubetune.api.failures import USER_ERROR_EXIT, read_termination_message
from kubetune.trainer import __main__ as trainer_main

pytestmark = pytest.mark.trainer


def test_a_user_error_exits_2_with_a_marked_termination_message(tmp_path, tiny_model_dir, single_process_group,
                                                                recipe_config, monkeypatch):
    config = recipe_config(tmp_path, tiny_model_dir("llama"), "bad-weights", customWeightsPath="/no/such/checkpoint")
    path = config.write(tmp_path / "trainer.json")
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")  # what the kubelet mounts into every container
    monkeypatch.setattr(trainer_main, "TERMINATION_LOG", str(termination_log))
    assert trainer_main.main(["--config", str(path)]) == USER_ERROR_EXIT
    user_error, message = read_termination_message(termination_log.read_text())
    assert user_error and message.startswith("spec.customWeightsPath: '/no/such/checkpoint' names no complete checkpoint")


def test_outside_a_pod_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_main, "TERMINATION_LOG", str(tmp_path / "absent"))
    trainer_main.leave_termination_message("x")
    assert not (tmp_path / "absent").exists()
