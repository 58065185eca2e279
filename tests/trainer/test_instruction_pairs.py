"""INSTRUCTION_FINETUNE pairs are used as written (as Databricks does): never wrapped in the chat template.

Token ids are exactly BOS (where the tokenizer adds one) + the prompt's tokens + the
response's tokens + EOS; the loss is on the response and its EOS only.
"""

import pytest
from helpers.data import FAMILIES

from kubetune.api.spec import TaskType
from kubetune.trainer.data import (
    IGNORE_INDEX, DataConfig, Example, Message, Origin, build_packed_dataset, tokenize_example,
)
from kubetune.trainer.evaluate import prompt_ids

pytestmark = pytest.mark.trainer
ORIGIN = Origin("t.jsonl", 1)
# Which tiny tokenizers start an encoding with a BOS token: one family without, two with.
BOS = {"llama": "<|begin_of_text|>", "qwen2": None, "mistral": "<s>"}


def instruction(tokenizer, prompt: str, response: str):
    return tokenize_example(Example(ORIGIN, prompt=prompt, response=response), tokenizer, TaskType.INSTRUCTION_FINETUNE)


def tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("family", FAMILIES)
def test_ids_are_bos_prompt_response_eos_and_the_loss_is_on_the_response(tokenizer_for, family):
    tokenizer = tokenizer_for(family)
    assert tokenizer.bos_token == BOS[family]
    prompt, response = "### Question\nWhat is two plus three?\n### Answer\n", "Five."
    tokenized = instruction(tokenizer, prompt, response)
    bos = [tokenizer.bos_token_id] if BOS[family] else []
    response_ids = tokens(tokenizer, response) + [tokenizer.eos_token_id]
    assert tokenized.input_ids == bos + tokens(tokenizer, prompt) + response_ids
    assert tokenized.labels == [IGNORE_INDEX] * len(bos + tokens(tokenizer, prompt)) + response_ids
    assert tokenizer.decode(tokenized.input_ids) == (BOS[family] or "") + prompt + response + tokenizer.eos_token


@pytest.mark.parametrize("family", FAMILIES)
def test_the_boundary_is_exact_where_the_tokenizer_would_merge_across_it(tokenizer_for, family):
    tokenizer = tokenizer_for(family)
    prompt, response = "Say fi", "ve."  # written together, " five" is one token
    assert tokens(tokenizer, prompt) + tokens(tokenizer, response) != tokens(tokenizer, prompt + response)
    tokenized = instruction(tokenizer, prompt, response)
    assert tokenizer.decode([t for t in tokenized.labels if t != IGNORE_INDEX]) == response + tokenizer.eos_token
    assert tokenized.input_ids[-len(tokens(tokenizer, response)) - 1 :] == tokens(tokenizer, response) + [tokenizer.eos_token_id]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_prompt_already_in_the_chat_format_is_not_templated_again(tokenizer_for, family):
    """Data formatted beforehand with the model's own template (the BOS text included) comes through as is."""
    tokenizer = tokenizer_for(family)
    formatted = tokenizer.apply_chat_template([{"role": "user", "content": "Say five."}], tokenize=False,
                                              add_generation_prompt=True)
    tokenized = instruction(tokenizer, formatted, "Five.")
    assert tokenized.input_ids == tokens(tokenizer, formatted) + tokens(tokenizer, "Five.") + [tokenizer.eos_token_id]
    assert tokenizer.decode(tokenized.input_ids) == formatted + "Five." + tokenizer.eos_token
    if BOS[family]:
        assert tokenized.input_ids.count(tokenizer.bos_token_id) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_prompts_of_an_instruction_run_start_as_its_training_prompts(tokenizer_for, family):
    tokenizer = tokenizer_for(family)
    prompt = "### Question\nSay five.\n### Answer\n"
    expected = instruction(tokenizer, prompt, "Five.").input_ids[: -len(tokens(tokenizer, "Five.")) - 1]
    assert prompt_ids(tokenizer, prompt, TaskType.INSTRUCTION_FINETUNE.value)[0].tolist() == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_data_still_goes_through_the_chat_template(tokenizer_for, family):
    tokenizer = tokenizer_for(family)
    conversation = [{"role": "user", "content": "Say five."}, {"role": "assistant", "content": "Five."}]
    example = Example(ORIGIN, messages=tuple(Message(**m) for m in conversation))
    tokenized = tokenize_example(example, tokenizer, TaskType.CHAT_COMPLETION)
    templated = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    assert tokenized.input_ids == list(templated)
    assert tokenized.input_ids != instruction(tokenizer, "Say five.", "Five.").input_ids


def test_packed_pairs_keep_their_loss_on_the_responses_only(tokenizer_for, write_jsonl):
    tokenizer = tokenizer_for("llama")
    pairs = [{"prompt": f"Q{i}: say {i}.\nA: ", "response": f"{i}."} for i in range(6)]
    pairs.append({"prompt": "Q: say ten.\nA: ", "completion": "10."})
    path = write_jsonl("pairs.jsonl", pairs)
    dataset = build_packed_dataset(DataConfig(str(path), TaskType.INSTRUCTION_FINETUNE, 64), tokenizer)
    learned = []
    for index in range(len(dataset)):
        row = dataset[index]
        learned += [tokenizer.decode([t]) for t in row["labels"].tolist() if t != IGNORE_INDEX]
        assert all(label in (IGNORE_INDEX, token) for label, token in zip(row["labels"].tolist(), row["input_ids"].tolist()))
    expected = [tokenizer.decode([t]) for p in pairs for t in tokens(tokenizer, p.get("response") or p["completion"])]
    eot = tokenizer.eos_token
    assert sorted(learned) == sorted(expected + [eot] * len(pairs))
