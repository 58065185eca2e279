"""AdamW is fused where the device has the kernel (optim.adamw_implementation), and steps like the plain one."""

import pytest
import torch

from kubetune.api.trainer_config import TrainingOptions
from kubetune.trainer.optim import adamw_implementation, build_optimizer

pytestmark = pytest.mark.trainer


def test_cpu_parameters_get_the_fused_adamw(model_for):
    optimizer = build_optimizer(model_for("llama"), 1e-3, TrainingOptions(device="cpu"))
    assert optimizer.defaults["fused"] is True


def test_parameters_without_a_fused_kernel_fall_back_to_foreach():
    assert adamw_implementation([torch.zeros(2, device="meta")]) == {"foreach": True}
    assert adamw_implementation([torch.zeros(2), torch.zeros(2, dtype=torch.float16, device="meta")]) == {"foreach": True}


def test_fused_steps_equal_the_unfused_ones(model_for):
    fused_model, plain_model, start = model_for("llama"), model_for("llama"), model_for("llama")
    options = TrainingOptions(device="cpu", weight_decay=0.1)
    fused = build_optimizer(fused_model, 1e-3, options)
    plain = torch.optim.AdamW(
        plain_model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=False, fused=False
    )
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        for a, b in zip(fused_model.parameters(), plain_model.parameters()):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        assert not torch.equal(a, start.get_parameter(name)), name  # it did move
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6, msg=name)
