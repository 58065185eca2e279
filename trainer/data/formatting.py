"""Examples to token ids and labels, with the model's own chat template.

Labels are aligned with input_ids (Hugging Face causal LMs shift them inside the
loss) and are IGNORE_INDEX wherever no loss is taken: everything but the
assistant turns (chat), everything but the response (instruction), nothing (CPT).
The first token of every example is never a label: nothing before it predicts it,
and in a packed sequence the token before it belongs to another example.

Assistant tokens are found by rendering the conversation incrementally: the
text up to each assistant turn (with the generation prompt) and through it; the
characters in between are the assistant's, and the tokens starting there (by the
fast tokenizer's offsets) get labels. This works for any template that renders a
conversation's prefixes as prefixes of the whole, which every family we support does.
A template that marks assistant text with `{% generation %}` blocks is used
directly instead (transformers' `return_assistant_tokens_mask`).
"""

import re
from dataclasses import dataclass

from jinja2.exceptions import TemplateError

from kubetune.api.data_rules import IGNORE_INDEX
from kubetune.api.spec import TaskType

from .records import Example, Message, Origin
from .validation import MAX_REPORTED, DataProblem, DataValidationError

_GENERATION_BLOCK = re.compile(r"\{%-?\s*generation\s*-?%\}")

# For base models that ship no chat template: plain role headers, EOS closing each assistant turn.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] | capitalize + ':\n' + message['content'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TokenizedExample:
    origin: Origin
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def loss_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


class ChatTemplateError(ValueError):
    """The chat template cannot be used to locate assistant tokens (a template we do not support)."""


def tokenize_examples(examples: list[Example], tokenizer, task_type: TaskType) -> list[TokenizedExample]:
    """Tokenizes every example; a conversation the template rejects is a data problem, all reported at once."""
    tokenized, problems = [], []
    for example in examples:
        try:
            tokenized.append(tokenize_example(example, tokenizer, task_type))
        except TemplateError as err:
            rule = f"the chat template rejected it: {err}"
            problems.append(DataProblem(example.origin.file, example.origin.line, rule))
    if problems:
        raise DataValidationError(problems[:MAX_REPORTED], len(problems))
    return tokenized


def tokenize_example(example: Example, tokenizer, task_type: TaskType) -> TokenizedExample:
    if task_type is TaskType.CHAT_COMPLETION:
        ids, labels = tokenize_chat(example.messages, tokenizer)
    elif task_type is TaskType.INSTRUCTION_FINETUNE:
        ids, labels = tokenize_instruction(example.prompt, example.response, tokenizer)
    else:
        ids, labels = tokenize_text(example.text, tokenizer)
    if labels:
        labels[0] = IGNORE_INDEX
    return TokenizedExample(example.origin, ids, labels)


def tokenize_chat(messages: tuple[Message, ...], tokenizer) -> tuple[list[int], list[int]]:
    if not tokenizer.is_fast:
        raise ChatTemplateError("locating assistant tokens needs a fast (Rust) tokenizer")
    conversation = [{"role": m.role, "content": m.content} for m in messages]
    template = tokenizer.chat_template or FALLBACK_CHAT_TEMPLATE
    if _GENERATION_BLOCK.search(template):
        return _tokenize_with_generation_blocks(conversation, tokenizer)
    text = _render(tokenizer, conversation, template)
    spans = [
        _assistant_span(tokenizer, conversation, i, template, text)
        for i, m in enumerate(conversation)
        if m["role"] == "assistant"
    ]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    labels = [
        token if any(start <= offset < end for start, end in spans) else IGNORE_INDEX
        for token, (offset, _) in zip(ids, encoded["offset_mapping"])
    ]
    return ids, labels


def _tokenize_with_generation_blocks(conversation: list[dict], tokenizer) -> tuple[list[int], list[int]]:
    encoded = tokenizer.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = list(encoded["input_ids"])
    return ids, [t if learn else IGNORE_INDEX for t, learn in zip(ids, encoded["assistant_masks"])]


def _assistant_span(tokenizer, conversation: list[dict], index: int, template: str, text: str) -> tuple[int, int]:
    """Character range of the assistant turn `index` in `text`: its content and closing tokens."""
    before = _render(tokenizer, conversation[:index], template, add_generation_prompt=True)
    through = _render(tokenizer, conversation[: index + 1], template)
    if not (through.startswith(before) and text.startswith(through)):
        raise ChatTemplateError(
            "the chat template does not render a conversation's beginning as a prefix of the whole; "
            "assistant tokens cannot be located"
        )
    return len(before), len(through)


def _render(tokenizer, conversation: list[dict], template: str, add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        conversation, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def tokenize_instruction(prompt: str, response: str, tokenizer) -> tuple[list[int], list[int]]:
    """The pair as written, never templated (as Databricks does: users format pairs for their model
    beforehand): the prompt with the tokenizer's BOS, then the response and EOS; loss on the response.
    The two are tokenized apart, so a tokenizer that would merge across the boundary cannot blur it."""
    prompt_ids = instruction_prompt_ids(prompt, tokenizer)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + _eos(tokenizer)
    return prompt_ids + response_ids, [IGNORE_INDEX] * len(prompt_ids) + response_ids


def instruction_prompt_ids(prompt: str, tokenizer) -> list[int]:
    """BOS where the tokenizer's own encoding starts with one (Llama, Mistral; not Qwen2) and the prompt does
    not already (formatted data may carry it), then the prompt's tokens; nothing else the tokenizer adds."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is None or ids[:1] == [bos] or tokenizer("", add_special_tokens=True)["input_ids"][:1] != [bos]:
        return ids
    return [bos, *ids]


def tokenize_text(text: str, tokenizer) -> tuple[list[int], list[int]]:
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids = ids + _eos(tokenizer)
    return ids, list(ids)


def _eos(tokenizer) -> list[int]:
    return [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
