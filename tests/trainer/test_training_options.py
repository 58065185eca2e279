"""The trainer's speed switches (TrainingOptions): each changes how a step is computed, never what it computes.

Chunked and unchunked cross-entropy give the same loss and gradients; selective activation checkpointing
gives exactly the gradients of full checkpointing and of none; a model with its decoder layers compiled
trains to the same loss as the eager one; a single process without a process group trains the plain
module (no FSDP), with its tied embeddings still tied."""

import pytest
import torch

from kubetune.api.trainer_config import TrainingOptions
from kubetune.trainer import distributed
from kubetune.trainer.data import collate
from kubetune.trainer.loss import count_loss_tokens
from kubetune.trainer.steps import forward_summed_loss
from test_chunked_loss import packed_batch

pytestmark = pytest.mark.trainer

CPU = torch.device("cpu")


def batch_for(model) -> dict:
    batch = packed_batch(tokens=48)
    batch["input_ids"] = batch["input_ids"] % model.config.vocab_size
    batch["labels"] = torch.where(batch["labels"] >= 0, batch["labels"] % model.config.vocab_size, batch["labels"])
    return batch


def loss_and_grads(model, batch: dict, chunked_loss: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = forward_summed_loss(model, batch, chunked_loss)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def prepared(model_for, **options):
    """The tiny Llama as a single process trains it: prepare_model without a process group."""
    torch.manual_seed(0)
    model = model_for("llama").train()
    return distributed.prepare_model(model, CPU, TrainingOptions(device="cpu", **options))


def test_unchunked_loss_gives_the_chunked_loss_and_gradients(model_for):
    model = prepared(model_for)
    batch = batch_for(model)
    chunked_loss, chunked_grads = loss_and_grads(model, batch, chunked_loss=True)
    plain_loss, plain_grads = loss_and_grads(model, batch, chunked_loss=False)
    torch.testing.assert_close(plain_loss, chunked_loss, rtol=1e-6, atol=0)
    assert plain_grads.keys() == chunked_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(plain_grads[name], chunked_grads[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("mode", ["full", "selective"])
def test_activation_checkpointing_gives_the_same_gradients_bit_for_bit(model_for, mode):
    batch = batch_for(model_for("llama"))
    expected_loss, expected = loss_and_grads(prepared(model_for, activation_checkpointing=False), batch)
    checkpointed = prepared(model_for, activation_checkpointing=True, activation_checkpointing_mode=mode)
    # transformers renamed the flag with the method (is_gradient_checkpointing before 5.x's rename).
    assert getattr(checkpointed, "is_activation_checkpointing", None) or checkpointed.is_gradient_checkpointing
    loss, grads = loss_and_grads(checkpointed, batch)
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=0)
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], rtol=0, atol=0, msg=name)


def matmuls_in_backward(model) -> int:
    """How many matrix multiplications the backward pass runs (its own, and any forward recomputation)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountMatmuls(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default):
                CountMatmuls.count += 1
            return func(*args, **(kwargs or {}))

    loss = forward_summed_loss(model, batch_for(model))
    with CountMatmuls():
        loss.backward()
    return CountMatmuls.count


def test_selective_checkpointing_recomputes_no_matmul_where_full_checkpointing_recomputes_each(model_for):
    plain = matmuls_in_backward(prepared(model_for, activation_checkpointing=False))
    full = matmuls_in_backward(prepared(model_for, activation_checkpointing=True, activation_checkpointing_mode="full"))
    selective = matmuls_in_backward(prepared(model_for, activation_checkpointing=True, activation_checkpointing_mode="selective"))
    assert selective == plain < full


def test_compiled_layers_train_to_the_eager_loss(model_for):
    """The real compiler (inductor, C++ on CPU) on the tiny model: the same loss and gradients as eager."""
    batch = batch_for(model_for("llama"))
    expected_loss, expected = loss_and_grads(prepared(model_for), batch)
    compiled = prepared(model_for, compile=True)
    layer = distributed.decoder_layers(compiled)[0]
    assert layer.mlp._compiled_call_impl is not None and layer.self_attn._compiled_call_impl is None
    loss, grads = loss_and_grads(compiled, batch)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_single_process_without_a_group_trains_the_plain_module_with_tied_weights(tiny_model_dir):
    from torch.distributed.fsdp import FSDPModule

    from kubetune.trainer.modeling import ModelSource, load_model

    assert not torch.distributed.is_initialized()
    model = load_model(ModelSource(str(tiny_model_dir("llama"))), CPU, TrainingOptions(device="cpu"))
    assert not isinstance(model, FSDPModule)
    assert all(p.device == CPU and not p.is_meta for p in model.parameters())
    assert model.config.tie_word_embeddings  # the tiny models tie them, as small models often do
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
