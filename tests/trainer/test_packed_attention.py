"""Packed attention without a dense mask (trainer/attention.py): a packed row computes, example by
example, exactly what each example computes alone, and nothing L×L is built for it."""

import pytest
import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM

from kubetune.api.trainer_config import TrainingOptions
from kubetune.trainer import attention
from kubetune.trainer.attention import DOCUMENT_ATTENTION, document_bounds
from kubetune.trainer.data import IGNORE_INDEX, Origin, TokenizedExample, collate, model_inputs
from kubetune.trainer.data.packing import PackedDataset
from kubetune.trainer.loss import summed_token_loss
from kubetune.trainer.modeling import ModelSource, load_model
from kubetune.trainer.steps import forward_summed_loss

pytestmark = pytest.mark.trainer

# Mixtral's experts multiply the tokens routed to them together, so a packed row and an example alone
# run different matrix shapes there: equal to fp32 rounding, not bit for bit.
BIT_EXACT = {"llama"}
LENGTHS = (23, 9, 14)  # three examples; a context of 64 leaves a padding segment after them


def _packed_row(vocab: int) -> tuple[dict, list[tuple[int, int]]]:
    """One packed sequence of three examples (labels on every token) and each example's [start, end)."""
    generator = torch.Generator().manual_seed(5)
    examples = []
    for length in LENGTHS:
        ids = torch.randint(3, vocab, (length,), generator=generator).tolist()
        examples.append(TokenizedExample(Origin("x"), ids, ids))
    dataset = PackedDataset.from_examples(examples, 64, pad_token_id=0)
    assert len(dataset) == 1
    batch = collate([dataset[0]])
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    return batch, list(zip(starts, starts[1:] + [64]))[: len(LENGTHS)]


@pytest.mark.parametrize("family", ["llama", "mixtral"])
def test_a_packed_row_equals_each_example_alone(model_for, family):
    packed_model = model_for(family, attn_implementation=DOCUMENT_ATTENTION)
    alone_model = model_for(family)  # plain SDPA, one unpadded example per forward: the reference
    batch, spans = _packed_row(packed_model.config.vocab_size)

    packed = packed_model(**model_inputs(batch, attn_implementation=DOCUMENT_ATTENTION)).logits[0]
    packed_loss = forward_summed_loss(packed_model, batch)
    packed_loss.backward()
    alone_loss = torch.zeros(())
    for start, end in spans:
        ids, labels = batch["input_ids"][:, start:end], batch["labels"][:, start:end]
        output = alone_model(input_ids=ids, output_hidden_states=True)
        if family in BIT_EXACT:
            assert torch.equal(packed[start:end], output.logits[0]), (start, end)
        torch.testing.assert_close(packed[start:end], output.logits[0], atol=1e-5, rtol=0)
        alone_loss = alone_loss + summed_token_loss(
            output.hidden_states[-1], alone_model.get_output_embeddings(), labels, torch.arange(end - start)[None]
        )
    alone_loss.backward()
    torch.testing.assert_close(packed_loss, alone_loss, atol=1e-5, rtol=1e-6)
    for (name, packed_param), alone_param in zip(packed_model.named_parameters(), alone_model.parameters()):
        torch.testing.assert_close(packed_param.grad, alone_param.grad, atol=1e-5, rtol=1e-5, msg=name)


def test_the_packed_path_builds_no_mask(model_for, monkeypatch):
    """Every attention call gets no mask and at most one example's tokens, at a context of 2048."""
    calls = []
    sdpa = attention.sdpa_attention_forward

    def spy(module, query, key, value, attention_mask, **kwargs):
        calls.append((tuple(query.shape), attention_mask))
        return sdpa(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(attention, "sdpa_attention_forward", spy)
    model = model_for("llama", attn_implementation=DOCUMENT_ATTENTION)
    lengths = [700, 1000, 348]
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    batch = {"input_ids": torch.randint(3, 100, (1, 2048)), "position_ids": positions}
    inputs = model_inputs(batch, attn_implementation=DOCUMENT_ATTENTION)
    assert "attention_mask" not in inputs
    with torch.no_grad():
        model(**inputs)
    layers = model.config.num_hidden_layers
    assert [shape[2] for shape, _ in calls] == lengths * layers
    assert all(mask is None for _, mask in calls)


def test_document_bounds_split_rows_at_position_zero():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]])
    assert document_bounds(positions) == ((0, 3, 5, 6), (0, 6))


def test_other_attention_implementations_get_the_dense_mask():
    inputs = model_inputs({"input_ids": torch.zeros(2, 5), "position_ids": torch.tensor([[0, 1, 2, 0, 1]] * 2)})
    assert inputs["attention_mask"].shape == (2, 1, 5, 5)


def test_generation_with_the_document_attention_equals_sdpa(model_for, tokenizer_for):
    """Evaluation prompts run through the training model: unpacked, with a cache, no document bounds."""
    prompt = tokenizer_for("llama")("Two plus three is", return_tensors="pt")["input_ids"]
    outputs = [
        model_for("llama", attn_implementation=implementation).generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
            pad_token_id=0,
        )
        for implementation in (DOCUMENT_ATTENTION, "sdpa")
    ]
    assert torch.equal(*outputs)


@pytest.mark.parametrize("activation_checkpointing", [False, True])
def test_the_trainer_trains_with_the_document_attention(tiny_model_dir, single_process_group, activation_checkpointing):
    """load_model's model (FSDP, activation checkpointing or not) takes the document bounds through its
    wrappers, and its loss and gradients equal those of the dense-mask fallback."""
    folder = tiny_model_dir("mixtral")
    options = TrainingOptions(device="cpu", activation_checkpointing=activation_checkpointing)
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    batch, _ = _packed_row(reference.config.vocab_size)
    dist.init_process_group("gloo")
    try:
        model = load_model(ModelSource(str(folder)), torch.device("cpu"), options)
        assert model.config._attn_implementation == DOCUMENT_ATTENTION
        loss = forward_summed_loss(model, batch)
        loss.backward()
        grads = {name: p.grad.full_tensor() for name, p in model.named_parameters()}
    finally:
        dist.destroy_process_group()
    expected = forward_summed_loss(reference, batch)  # sdpa: the dense block-causal mask
    expected.backward()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-6)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-5, rtol=1e-5, msg=name)


def test_padding_labels_stay_out_of_the_packed_loss():
    batch, spans = _packed_row(50)
    assert (batch["labels"][0, spans[-1][1] :] == IGNORE_INDEX).all()
