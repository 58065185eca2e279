"""Tokenization with each family's real chat template; labels only where the model should learn."""

import pytest
from helpers.data import FAMILIES, chat

from kubetune.api.spec import TaskType
from kubetune.trainer.data import (
    IGNORE_INDEX,
    DataConfig,
    DataValidationError,
    Example,
    Message,
    Origin,
    build_packed_dataset,
    tokenize_example,
    tokenizer_accepts_system_role,
)
from kubetune.trainer.data.formatting import ChatTemplateError
from kubetune.trainer.tiny_models import build_tokenizer

pytestmark = pytest.mark.trainer
ORIGIN = Origin("t.jsonl", 1)

# What each family's template puts in the assistant turns: the content and the turn's closing tokens.
ASSISTANT_TURNS = {
    "llama": "Five.<|eot_id|>It is ten.<|eot_id|>",
    "qwen2": "Five.<|im_end|>\nIt is ten.<|im_end|>\n",
    "mistral": "Five.</s>It is ten.</s>",
}


def _labelled_text(tokenizer, tokenized) -> str:
    return tokenizer.decode([t for t in tokenized.labels if t != IGNORE_INDEX])


def _chat_example(family: str) -> Example:
    record = chat("What is two plus three?", "Five.", "And five plus five?", "It is ten.",
                  system=None if family == "mistral" else "Be brief.")
    return Example(ORIGIN, messages=tuple(Message(**m) for m in record["messages"]))


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_labels_are_exactly_the_assistant_turns(tokenizer_for, family):
    tokenizer = tokenizer_for(family)
    example = _chat_example(family)
    tokenized = tokenize_example(example, tokenizer, TaskType.CHAT_COMPLETION)
    conversation = [{"role": m.role, "content": m.content} for m in example.messages]
    assert tokenized.input_ids == list(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"])
    assert _labelled_text(tokenizer, tokenized) == ASSISTANT_TURNS[family]
    assert len(tokenized.labels) == len(tokenized.input_ids)


@pytest.mark.parametrize("family", FAMILIES)
def test_instruction_pairs_are_used_as_written_never_templated(tokenizer_for, family):
    """Databricks does not template prompt/response pairs: the token ids are exactly the prompt (with the
    tokenizer's BOS), the response and EOS, even where the model has a chat template; loss on the response."""
    tokenizer = tokenizer_for(family)
    assert tokenizer.chat_template
    prompt, response = "### Question\nSay five.\n### Answer\n", "Five."
    tokenized = tokenize_example(Example(ORIGIN, prompt=prompt, response=response), tokenizer, TaskType.INSTRUCTION_FINETUNE)
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tokenized.input_ids == prompt_ids + response_ids
    assert tokenized.labels == [IGNORE_INDEX] * len(prompt_ids) + response_ids
    assert _labelled_text(tokenizer, tokenized) == response + tokenizer.eos_token


def test_instruction_without_a_template_is_prompt_then_response_and_eos():
    tokenizer = build_tokenizer("llama")
    tokenizer.chat_template = None
    tokenized = tokenize_example(Example(ORIGIN, prompt="Say five. ", response="Five."), tokenizer,
                                 TaskType.INSTRUCTION_FINETUNE)
    assert tokenizer.decode(tokenized.input_ids) == "<|begin_of_text|>Say five. Five.<|eot_id|>"
    assert _labelled_text(tokenizer, tokenized) == "Five.<|eot_id|>"


def test_chat_without_a_template_uses_the_fallback_template():
    tokenizer = build_tokenizer("qwen2")
    tokenizer.chat_template = None
    tokenized = tokenize_example(_chat_example("qwen2"), tokenizer, TaskType.CHAT_COMPLETION)
    assert tokenizer.decode(tokenized.input_ids).startswith("### System:\nBe brief.\n### User:\nWhat is two")
    assert _labelled_text(tokenizer, tokenized) == "Five.\n<|im_end|>It is ten.\n<|im_end|>"


@pytest.mark.parametrize("family", FAMILIES)
def test_continued_pretraining_learns_every_token_but_the_first_and_ends_with_eos(tokenizer_for, family):
    tokenizer = tokenizer_for(family)
    tokenized = tokenize_example(Example(ORIGIN, text="The quick brown fox."), tokenizer, TaskType.CONTINUED_PRETRAIN)
    assert tokenized.input_ids[-1] == tokenizer.eos_token_id
    assert tokenized.labels == [IGNORE_INDEX, *tokenized.input_ids[1:]]
    assert tokenizer.decode(tokenized.input_ids, skip_special_tokens=True) == "The quick brown fox."


def test_which_templates_accept_a_system_role(tokenizer_for):
    assert [tokenizer_accepts_system_role(tokenizer_for(f)) for f in FAMILIES] == [True, True, False]


def test_a_conversation_the_template_rejects_is_a_data_problem(tokenizer_for, write_jsonl):
    # accepts_system_role left True: the Mistral template itself refuses the system message.
    path = write_jsonl("d.jsonl", [chat("q", "a"), chat("q", "a", system="s")])
    with pytest.raises(DataValidationError) as caught:
        build_packed_dataset(DataConfig(str(path), TaskType.CHAT_COMPLETION, 64), tokenizer_for("mistral"))
    [problem] = caught.value.problems
    assert problem.line == 2
    assert problem.rule == "the chat template rejected it: Conversation roles must alternate user/assistant/user/assistant/..."


def test_generation_blocks_mark_assistant_tokens_where_incremental_rendering_cannot():
    tokenizer = build_tokenizer("llama")
    # The leading turn count makes every prefix differ from the whole; only the generation blocks can help.
    tokenizer.chat_template = (
        "{{ bos_token }}{{ messages | length }}{% for m in messages %}"
        "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' }}"
        "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
        "{% else %}{{ m['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"
    )
    tokenized = tokenize_example(_chat_example("llama"), tokenizer, TaskType.CHAT_COMPLETION)
    assert tokenizer.decode(tokenized.input_ids).startswith("<|begin_of_text|>5<|start_header_id|>system")
    assert _labelled_text(tokenizer, tokenized) == ASSISTANT_TURNS["llama"]


def test_a_template_that_rewrites_earlier_turns_is_refused():
    tokenizer = build_tokenizer("qwen2")
    tokenizer.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="prefix of the whole"):
        tokenize_example(_chat_example("qwen2"), tokenizer, TaskType.CHAT_COMPLETION)
