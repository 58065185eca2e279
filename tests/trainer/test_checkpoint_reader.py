"""Checkpoints are read without trusting them (trainer/checkpoint_reader.py): a checkpoint folder on a shared
claim can be anyone's, and torch's loaders unpickle what they find there. A genuine checkpoint loads as
before; one whose index or RNG file would run code is refused as the user's error before anything runs."""

import os
import pickle
import warnings

import pytest
import torch
import torch.distributed.checkpoint as dcp

from kubetune.trainer.checkpoint import load_model_weights
from kubetune.trainer.checkpoint_reader import METADATA_FILE, UntrustedCheckpointError, load_rng_state
from kubetune.trainer.errors import USER_ERRORS

pytestmark = pytest.mark.trainer


class RunsCode:
    """What a crafted pickle holds: unpickling it calls a function of the attacker's choice."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def saved_model(folder) -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
        dcp.save({"model": model.state_dict()}, checkpoint_id=str(folder))
    return model


def test_a_genuine_checkpoint_loads_the_same_weights(tmp_path):
    saved = saved_model(tmp_path / "ckpt")
    loaded = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).to(torch.bfloat16)
    load_model_weights(tmp_path / "ckpt", loaded)
    for a, b in zip(saved.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_index_that_would_run_code_is_refused_as_a_user_error(tmp_path):
    saved_model(tmp_path / "ckpt")
    marker = tmp_path / "code-ran"
    (tmp_path / "ckpt" / METADATA_FILE).write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(UntrustedCheckpointError, match=r"ckpt/\.metadata: the checkpoint index refers to posix\.mkdir") as refused:
        load_model_weights(tmp_path / "ckpt", torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)))
    assert isinstance(refused.value, USER_ERRORS)  # the run fails at once: a retry would read the same file
    assert not marker.exists()


def test_rng_states_load_and_a_crafted_rng_file_is_refused(tmp_path):
    import random

    genuine = tmp_path / "rank0.pt"
    torch.save({"python": random.getstate(), "torch": torch.get_rng_state()}, genuine)
    assert load_rng_state(genuine)["python"] == random.getstate()

    marker = tmp_path / "code-ran"
    crafted = tmp_path / "rank1.pt"
    torch.save({"python": RunsCode(marker)}, crafted)
    with pytest.raises(pickle.UnpicklingError):
        load_rng_state(crafted)
    assert not marker.exists()
