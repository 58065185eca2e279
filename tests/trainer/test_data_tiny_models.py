"""The tiny models are deterministic, and the committed quickstart model is what the command writes."""

import filecmp
import os
import subprocess
import sys

import pytest
import torch
from helpers.cluster import REPO_ROOT
from helpers.data import FAMILIES
from safetensors.torch import load_file

from kubetune.trainer.tiny_models import build_tiny_model, build_tokenizer

pytestmark = pytest.mark.trainer
COMMITTED = REPO_ROOT / "examples" / "models" / "tiny-llama"
WEIGHTS = "model.safetensors"


def test_regenerating_the_committed_model_gives_identical_files(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "kubetune.trainer.tiny_models", str(tmp_path / "m"), "--family", "llama"],
        check=True, capture_output=True, env={**os.environ, "PYTHONSAFEPATH": "1"},
    )
    names = sorted(p.name for p in COMMITTED.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "m").iterdir())  # what the installed transformers writes
    text_files = [n for n in names if n != WEIGHTS]
    match, mismatch, errors = filecmp.cmpfiles(COMMITTED, tmp_path / "m", text_files, shallow=False)
    assert (mismatch, errors) == ([], [])
    committed, regenerated = load_file(COMMITTED / WEIGHTS), load_file(tmp_path / "m" / WEIGHTS)
    assert committed.keys() == regenerated.keys()
    for name, tensor in committed.items():
        assert torch.equal(tensor, regenerated[name]), name
    assert sum(f.stat().st_size for f in COMMITTED.iterdir()) < 2 * 1024 * 1024


@pytest.mark.parametrize("family", FAMILIES)
def test_models_are_real_family_architectures_and_seeded(tokenizer_for, family):
    tokenizer = tokenizer_for(family)
    first = build_tiny_model(family, tokenizer, seed=1)
    again = build_tiny_model(family, tokenizer, seed=1)
    other = build_tiny_model(family, tokenizer, seed=2)
    assert first.config.model_type == family
    assert first.config.vocab_size == len(tokenizer)
    weights = first.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in again.state_dict().items())
    assert not all(torch.equal(weights[k], v) for k, v in other.state_dict().items())
    ids = tokenizer("hello world", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert first(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_tokenizers_are_rebuilt_identically():
    assert build_tokenizer("qwen2").backend_tokenizer.to_str() == build_tokenizer("qwen2").backend_tokenizer.to_str()
