"""Truncation, packing and the block-diagonal mask: packed examples never see each other."""

import random

import pytest
import torch
from helpers.data import FAMILIES, chat

from kubetune.api.spec import TaskType
from kubetune.trainer.data import (
    IGNORE_INDEX,
    DataConfig,
    Origin,
    TokenizedExample,
    block_causal_mask,
    build_packed_dataset,
    collate,
    model_inputs,
    pack_examples,
)
from kubetune.trainer.data.packing import PackedDataset

pytestmark = pytest.mark.trainer


def _example(length: int, first: int = 1, loss_from: int = 0) -> TokenizedExample:
    ids = list(range(first, first + length))
    return TokenizedExample(Origin("x"), ids, [IGNORE_INDEX] * loss_from + ids[loss_from:])


def test_pack_examples_fills_bins_without_overflow_and_uses_every_example_once():
    lengths = [random.Random(3).randint(1, 100) for _ in range(300)]
    bins = pack_examples(lengths, 128, seed=0)
    assert sorted(i for b in bins for i in b) == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 128 for b in bins)
    lower_bound = -(-sum(lengths) // 128)
    assert len(bins) <= lower_bound + 2  # best-fit decreasing is close to optimal on such data
    assert pack_examples(lengths, 128, seed=0) == bins


def test_packed_dataset_items_stats_and_padding():
    examples = [_example(5), _example(3, first=10, loss_from=2), _example(9, first=20), _example(12, first=40)]
    dataset = PackedDataset.from_examples(examples, 10, pad_token_id=0)
    stats = dataset.stats
    assert (stats.examples, stats.truncated_examples, stats.sequences) == (4, 1, 3)
    assert stats.real_tokens == 5 + 3 + 9 + 10 == dataset.tokens_per_epoch
    assert [dataset.real_tokens_of(i) for i in range(3)] == [10, 9, 8]
    assert stats.loss_tokens == 5 + 1 + 9 + 10
    assert stats.padding_tokens == 3 * 10 - stats.real_tokens
    assert stats.efficiency == pytest.approx(27 / 30)
    items = [dataset[i] for i in range(len(dataset))]
    # 12 is cut to 10; 9 and 5+3 follow, largest first.
    assert items[0]["input_ids"].tolist() == list(range(40, 50))
    assert items[1]["input_ids"].tolist() == [*range(20, 29), 0]
    assert items[1]["labels"].tolist() == [*range(20, 29), IGNORE_INDEX]
    assert items[2]["position_ids"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1]
    assert items[2]["labels"].tolist() == [1, 2, 3, 4, 5, IGNORE_INDEX, IGNORE_INDEX, 12, IGNORE_INDEX, IGNORE_INDEX]
    batch = collate(items)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
        k: (torch.Size([3, 10]), torch.long) for k in ("input_ids", "labels", "position_ids")
    }


def test_long_documents_are_split_not_truncated_for_continued_pretraining():
    dataset = PackedDataset.from_examples([_example(25)], 10, pad_token_id=0, split_long=True)
    assert (dataset.stats.split_documents, dataset.stats.truncated_examples, dataset.stats.examples) == (1, 0, 3)
    assert dataset.tokens_per_epoch == 25
    # Each piece starts a new segment, so its first token has no label.
    assert dataset.stats.loss_tokens == 25 - 3


def test_block_causal_mask():
    mask = block_causal_mask(torch.tensor([[0, 1, 2, 0, 1]]))
    allowed = (mask[0, 0] == 0).int().tolist()
    assert mask.shape == (1, 1, 5, 5)
    assert allowed == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    assert mask.min() == torch.finfo(torch.float32).min
    assert block_causal_mask(torch.tensor([[0, 1]]), torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("family", FAMILIES)
def test_packed_examples_do_not_attend_to_each_other(model_for, tokenizer_for, write_jsonl, family, attn_implementation):
    tokenizer = tokenizer_for(family)
    path = write_jsonl("d.jsonl", [chat("What is two plus three?", "Five."),
                                   chat("Spell river backwards.", "revir", "And cloud?", "duolc")])
    config = DataConfig(str(path), TaskType.CHAT_COMPLETION, 160)
    dataset = build_packed_dataset(config, tokenizer)
    assert len(dataset) == 1
    item = dataset[0]
    starts = (item["position_ids"] == 0).nonzero().flatten().tolist()
    assert len(starts) == 3  # two examples and the padding segment
    model = model_for(family, attn_implementation=attn_implementation)
    with torch.no_grad():
        packed = model(**model_inputs(collate([item]))).logits[0]
        for start, end in zip(starts, starts[1:]):
            alone = model(input_ids=item["input_ids"][None, start:end]).logits[0]
            torch.testing.assert_close(packed[start:end], alone, atol=1e-5, rtol=1e-5)
        # Without the mask the second example does see the first: the test can tell the difference.
        unmasked = model(input_ids=item["input_ids"][None], position_ids=item["position_ids"][None],
                         attention_mask=torch.ones(1, 160, dtype=torch.long)).logits[0]
    assert not torch.allclose(unmasked[starts[1]:starts[2]], packed[starts[1]:starts[2]], atol=1e-3)
