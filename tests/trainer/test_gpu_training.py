"""The trainer's CUDA path end to end, on a real GPU (skipped where there is none; bench/gpu-check.sh runs
it on a GPU machine): NCCL, bf16 compute with fp32 reductions and activation checkpointing train the tiny
model through real torchrun to a complete checkpoint, eval-prompt generations and an export that loads back,
on the loss curve of the same run in fp32 on CPU."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers.torchrun import losses_by_step, run_standalone, tail
from kubetune.api import checkpoints

pytestmark = [
    pytest.mark.trainer,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# bf16 keeps 8 bits of mantissa: a few steps of the same data agree to about 1e-2 relative.
BF16_TOLERANCE = 3e-2


def _on(config, device: str, folder):
    folder.mkdir()
    options = config.training.model_copy(update={"device": device})
    on_device = config.model_copy(update={"training": options})
    path = folder / "trainer.json"
    on_device.write(path)
    return on_device, path


def test_one_gpu_follows_the_cpu_loss_curve_to_an_export(tmp_path, tiny_model_dir, recipe_config):
    model_dir = tiny_model_dir("llama")
    base = recipe_config(tmp_path, model_dir, "gpu-run")
    cpu, cpu_path = _on(base.model_copy(update={"paths": base.paths.model_copy(update={
        "checkpoint_root": tmp_path / "cpu" / "ckpt", "output_root": tmp_path / "cpu" / "out"})}), "cpu", tmp_path / "cpu")
    gpu, gpu_path = _on(base.model_copy(update={"paths": base.paths.model_copy(update={
        "checkpoint_root": tmp_path / "gpu" / "ckpt", "output_root": tmp_path / "gpu" / "out"})}), "cuda", tmp_path / "gpu")

    for config, path in ((cpu, cpu_path), (gpu, gpu_path)):
        log = path.parent / "torchrun.log"
        assert run_standalone(path, log) == 0, tail(log)

    records = [json.loads(line) for line in gpu.metrics_file.read_text().splitlines()]
    assert next(r["params"] for r in records if r["kind"] == "params")["device"] == "cuda"
    expected, actual = losses_by_step(cpu.metrics_file), losses_by_step(gpu.metrics_file)
    assert sorted(actual) == sorted(expected) == [1, 2, 3, 4]
    for step in expected:
        assert actual[step] == pytest.approx(expected[step], rel=BF16_TOLERANCE), (step, expected, actual)

    latest = checkpoints.latest_checkpoint(gpu.run_checkpoint_dir)
    assert latest is not None and latest.name.endswith("-ba4")
    generations = [r for r in records if r["kind"] == "generations"]
    assert generations and all(isinstance(row["generation"], str) for row in generations[-1]["rows"])
    exported = load_file(gpu.export_dir / "model.safetensors")
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(gpu.export_dir, dtype=torch.float32)
    for name, tensor in reloaded.state_dict().items():
        if name in exported:
            assert torch.equal(tensor, exported[name].float()), name
