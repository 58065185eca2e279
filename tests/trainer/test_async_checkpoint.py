"""Checkpoints written in the background (trainer/checkpoint.py, DCP's async_save): the state is the one of the
step the save started at even when training changes the weights meanwhile, it resumes exactly, and the
COMPLETE marker and `latest` appear only once the write has finished; a failed write leaves no marker."""

import warnings
from concurrent.futures import Future

import pytest
import torch

from kubetune.api.checkpoints import COMPLETE_MARKER, PROGRESS_FILE, latest_checkpoint, list_checkpoints
from kubetune.trainer import checkpoint as ckpt
from kubetune.trainer.distributed import DistributedEnv

pytestmark = pytest.mark.trainer

ENV = DistributedEnv(rank=0, world_size=1, local_rank=0)


def model_and_optimizer(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    return model, optimizer


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DCP: "assuming the intent is to save in a single process"
        yield


def test_a_background_save_holds_the_step_it_started_at_and_resumes_exactly(tmp_path):
    model, optimizer = model_and_optimizer()
    saved = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    progress = ckpt.TrainingProgress(step=3, tokens_seen=100)

    pending = ckpt.start_checkpoint(tmp_path, model, optimizer, progress, ENV, background=True)
    with torch.no_grad():  # training goes on while the thread writes
        for parameter in model.parameters():
            parameter.add_(1.0)
    progress.step = 4
    path = ckpt.finish_checkpoint(pending, ENV)

    assert (path / COMPLETE_MARKER).exists() and latest_checkpoint(tmp_path) == path
    restored, restored_optimizer = model_and_optimizer(seed=1)
    resumed = ckpt.load_checkpoint(path, restored, restored_optimizer, ENV)
    assert resumed.step == 3 and resumed.tokens_seen == 100
    for name, tensor in restored.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0)


def test_consecutive_background_saves_each_hold_their_own_step(tmp_path):
    """The host copy's buffers are reused from one save to the next: the second save must not change the first."""
    model, optimizer = model_and_optimizer()
    first_weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    first = ckpt.finish_checkpoint(ckpt.start_checkpoint(tmp_path, model, optimizer, ckpt.TrainingProgress(step=1), ENV, True), ENV)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(-3.0)
    second_weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    second = ckpt.finish_checkpoint(ckpt.start_checkpoint(tmp_path, model, optimizer, ckpt.TrainingProgress(step=2), ENV, True), ENV)

    for path, expected in ((first, first_weights), (second, second_weights)):
        restored, restored_optimizer = model_and_optimizer(seed=1)
        ckpt.load_checkpoint(path, restored, restored_optimizer, ENV)
        for name, tensor in restored.state_dict().items():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)


def test_the_marker_and_latest_wait_for_the_write(tmp_path, monkeypatch):
    """Until the background write has finished the folder is no checkpoint: no marker, no progress, not `latest`."""
    write = Future()
    monkeypatch.setattr(ckpt.dcp, "async_save", lambda *args, **kwargs: write)
    model, optimizer = model_and_optimizer()

    pending = ckpt.start_checkpoint(tmp_path, model, optimizer, ckpt.TrainingProgress(step=5), ENV, background=True)

    assert not pending.written()
    assert not (pending.path / COMPLETE_MARKER).exists() and not (pending.path / PROGRESS_FILE).exists()
    assert list_checkpoints(tmp_path) == [] and latest_checkpoint(tmp_path) is None
    write.set_result(None)
    assert pending.written()
    ckpt.finish_checkpoint(pending, ENV)
    assert latest_checkpoint(tmp_path) == pending.path


def test_a_failed_background_write_leaves_no_complete_checkpoint(tmp_path, monkeypatch):
    write = Future()
    write.set_exception(OSError("disk full"))
    monkeypatch.setattr(ckpt.dcp, "async_save", lambda *args, **kwargs: write)
    model, optimizer = model_and_optimizer()

    pending = ckpt.start_checkpoint(tmp_path, model, optimizer, ckpt.TrainingProgress(step=5), ENV, background=True)
    with pytest.raises(OSError, match="disk full"):
        ckpt.finish_checkpoint(pending, ENV)
    assert not (pending.path / COMPLETE_MARKER).exists()
    assert latest_checkpoint(tmp_path) is None
