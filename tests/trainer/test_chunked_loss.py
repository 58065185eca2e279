"""The chunked cross-entropy (trainer/loss.py) against the plain computation on full logits: the same loss
and gradients to fp32 rounding, never more than one chunk of logits at a time, the bf16 compute of GPUs,
and through every supported model family (steps.forward_summed_loss)."""

import pytest
import torch
import torch.nn.functional as F

from kubetune.api.data_rules import IGNORE_INDEX
from kubetune.trainer import loss as loss_module
from kubetune.trainer.data import model_inputs
from kubetune.trainer.loss import LOGITS_CHUNK_BYTES, chunk_tokens_for, shifted_labels, summed_token_loss
from kubetune.trainer.steps import forward_summed_loss

pytestmark = pytest.mark.trainer

VOCAB, HIDDEN = 97, 16


def plain_summed_loss(logits: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """The loss as the trainer computed it before chunking: fp32 logits of every position at once."""
    targets = shifted_labels(labels, position_ids)
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )


def packed_batch(batch: int = 2, tokens: int = 40, seed: int = 0) -> dict:
    """Two packed sequences per row (positions restart at 12), the first five labels of each row masked."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (batch, tokens), generator=generator)
    labels = input_ids.clone()
    labels[:, :5] = IGNORE_INDEX
    position_ids = torch.cat([torch.arange(12), torch.arange(tokens - 12)]).repeat(batch, 1)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def head_and_hidden(dtype=torch.float32, seed: int = 0) -> tuple[torch.nn.Linear, torch.Tensor]:
    torch.manual_seed(seed)
    head = torch.nn.Linear(HIDDEN, VOCAB, bias=False).to(dtype)
    hidden = torch.randn(2, 40, HIDDEN, dtype=dtype, requires_grad=True)
    return head, hidden


@pytest.mark.parametrize("chunk_tokens", [1, 7, 10_000])
def test_chunked_loss_and_gradients_equal_the_full_logits_computation(chunk_tokens):
    batch = packed_batch()
    head, hidden = head_and_hidden()
    expected = plain_summed_loss(head(hidden), batch["labels"], batch["position_ids"])
    expected.backward()
    expected_grads = (hidden.grad.clone(), head.weight.grad.clone())
    hidden.grad, head.weight.grad = None, None

    actual = summed_token_loss(hidden, head, batch["labels"], batch["position_ids"], chunk_tokens=chunk_tokens)
    actual.backward()

    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0)
    # fp32 sums in another order: one chunk per token adds lm_head's gradient a row at a time
    torch.testing.assert_close(hidden.grad, expected_grads[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(head.weight.grad, expected_grads[1], rtol=1e-5, atol=1e-6)


def test_no_more_than_one_chunk_of_logits_exists_forward_or_backward(monkeypatch):
    """Every projection, the forward's and the backward's recomputation, covers at most chunk_tokens rows,
    and the backward recomputes each chunk (activation checkpointing) instead of keeping its logits."""
    projected_rows: list[int] = []
    chunk_loss = loss_module._chunk_loss

    def spy(states, *rest):
        projected_rows.append(states.shape[0])
        return chunk_loss(states, *rest)

    monkeypatch.setattr(loss_module, "_chunk_loss", spy)
    batch = packed_batch()
    head, hidden = head_and_hidden()
    loss_tokens = int((shifted_labels(batch["labels"], batch["position_ids"]) != IGNORE_INDEX).sum())
    total = summed_token_loss(hidden, head, batch["labels"], batch["position_ids"], chunk_tokens=8)
    forward_rows = list(projected_rows)
    total.backward()

    assert max(projected_rows) == 8
    assert sum(forward_rows) == loss_tokens  # only loss positions are projected
    assert sum(projected_rows) == 2 * loss_tokens  # each chunk once more in the backward pass


def test_a_micro_batch_without_loss_tokens_backpropagates_zero_gradients():
    """A rank's filler micro-batch: loss 0, and gradients that exist (FSDP reduces them on every rank) and are 0."""
    batch = packed_batch()
    head, hidden = head_and_hidden()
    masked = torch.full_like(batch["labels"], IGNORE_INDEX)
    total = summed_token_loss(hidden, head, masked, batch["position_ids"])
    total.backward()
    assert float(total.detach()) == 0.0
    assert hidden.grad is not None and head.weight.grad is not None
    assert not hidden.grad.any() and not head.weight.grad.any()


def test_bf16_compute_gives_the_loss_of_full_bf16_logits():
    """The GPU path: bf16 hidden states and lm_head (FSDP's compute dtype), logits upcast per chunk."""
    batch = packed_batch()
    head, hidden = head_and_hidden(torch.bfloat16)
    expected = plain_summed_loss(head(hidden), batch["labels"], batch["position_ids"])
    expected.backward()
    expected_grad = hidden.grad.clone()
    hidden.grad = None
    actual = summed_token_loss(hidden, head, batch["labels"], batch["position_ids"], chunk_tokens=16)
    actual.backward()
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0)  # identical bf16 logits, fp32 sums in another order
    assert hidden.grad.dtype == torch.bfloat16
    torch.testing.assert_close(hidden.grad, expected_grad)


@pytest.mark.parametrize("vocab", [640, 32_000, 128_256, 152_064])
def test_the_default_chunk_keeps_fp32_logits_within_the_budget(vocab):
    tokens = chunk_tokens_for(vocab)
    assert tokens >= 1 and tokens * vocab * 4 <= LOGITS_CHUNK_BYTES
    assert (tokens + 1) * vocab * 4 > LOGITS_CHUNK_BYTES


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_the_model_loss_equals_cross_entropy_of_its_logits(family, model_for):
    """forward_summed_loss takes the final hidden states from the model and applies its lm_head itself."""
    model = model_for(family).train()
    batch = packed_batch(tokens=40)
    batch["input_ids"] = batch["input_ids"] % model.config.vocab_size
    inputs = model_inputs({k: batch[k] for k in ("input_ids", "labels", "position_ids")}, mask_dtype=torch.float32)
    expected = plain_summed_loss(model(**inputs, use_cache=False).logits, batch["labels"], batch["position_ids"])
    expected.backward()
    expected_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    actual = forward_summed_loss(model, batch)
    actual.backward()

    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected_grads[name], rtol=1e-5, atol=1e-6, msg=name)
