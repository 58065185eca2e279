"""The choices the trainer makes for GPUs, checked on CPU (no GPU here): NCCL, bf16 compute with fp32
reductions, activation checkpointing on by default, and a real run showing activation checkpointing
leaves the loss curve unchanged."""

import pytest
import torch

from helpers.torchrun import losses_by_step
from kubetune.api.trainer_config import TrainingOptions
from kubetune.trainer.data import block_causal_mask, model_inputs
from kubetune.trainer.distributed import backend_for, compute_dtype, mixed_precision, wants_activation_checkpointing
from kubetune.trainer.recipe import run

pytestmark = pytest.mark.trainer

CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")


def test_gpus_use_nccl_and_cpus_gloo():
    assert backend_for(CUDA) == "nccl"
    assert backend_for(CPU) == "gloo"


def test_gpus_compute_in_bf16_and_reduce_in_fp32():
    assert compute_dtype(CUDA) == torch.bfloat16 and compute_dtype(CPU) == torch.float32
    gpu, cpu = mixed_precision(CUDA), mixed_precision(CPU)
    assert (gpu.param_dtype, gpu.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert (cpu.param_dtype, cpu.reduce_dtype) == (None, None)


@pytest.mark.parametrize("setting, device, expected", [
    (None, CUDA, True), (None, CPU, False), (False, CUDA, False), (True, CPU, True),
])
def test_activation_checkpointing_defaults_to_gpus_only(setting, device, expected):
    assert wants_activation_checkpointing(TrainingOptions(activation_checkpointing=setting), device) is expected


def test_bf16_attention_mask_blocks_the_same_positions():
    """The bf16 mask the GPU path builds masks exactly what the fp32 one masks (dtype-min stays -inf-like)."""
    positions = torch.tensor([[0, 1, 2, 0, 1, 0]])
    fp32, bf16 = block_causal_mask(positions, torch.float32), block_causal_mask(positions, torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    assert torch.equal(fp32 == 0, bf16 == 0)
    inputs = model_inputs({"input_ids": positions, "position_ids": positions}, mask_dtype=torch.bfloat16)
    assert inputs["attention_mask"].dtype == torch.bfloat16 and set(inputs) == {"input_ids", "position_ids", "attention_mask"}


def test_activation_checkpointing_keeps_the_loss_curve(tmp_path, tiny_model_dir, single_process_group, recipe_config, monkeypatch):
    from helpers.mlflow_server import free_port

    model_dir = tiny_model_dir("llama")
    (tmp_path / "plain").mkdir()
    (tmp_path / "recomputed").mkdir()
    plain = recipe_config(tmp_path / "plain", model_dir, "plain")
    assert run(plain) == 0
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    recomputed = recipe_config(tmp_path / "recomputed", model_dir, "recomputed")
    recomputed = recomputed.model_copy(update={"training": recomputed.training.model_copy(update={"activation_checkpointing": True})})
    assert run(recomputed) == 0
    expected, actual = losses_by_step(plain.metrics_file), losses_by_step(recomputed.metrics_file)
    assert sorted(actual) == sorted(expected) == [1, 2, 3, 4]
    for step in expected:  # recomputation is the same arithmetic: fp32 on CPU agrees to rounding
        assert actual[step] == pytest.approx(expected[step], rel=1e-5)
