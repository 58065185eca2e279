"""The data rules: every broken record reported with its file, line and rule, all at once."""

import pytest
from helpers.data import chat

from kubetune.api.spec import TaskType
from kubetune.trainer.data import MAX_REPORTED, DataConfig, DataValidationError, load_and_validate

pytestmark = pytest.mark.trainer
CHAT = TaskType.CHAT_COMPLETION


def _problems(write_jsonl, records, task_type=CHAT, **config):
    path = write_jsonl("data.jsonl", records)
    with pytest.raises(DataValidationError) as caught:
        load_and_validate(DataConfig(str(path), task_type, 128, **config))
    return [(p.line, p.rule) for p in caught.value.problems]


def _msg(role, content="x"):
    return {"role": role, "content": content}


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        ({"messages": [_msg("user"), _msg("assistant")], "id": 1}, "`messages` must be the only key (found: `messages`, `id`)"),
        ({"conversation": []}, "`messages` must be the only key (found: `conversation`)"),
        ({"messages": [_msg("user")]}, "`messages` must be a list of at least two messages"),
        ({"messages": "hi"}, "`messages` must be a list of at least two messages"),
        ({"messages": [_msg("user"), {"role": "assistant", "content": "x", "name": "a"}]},
         "messages[1] must have exactly the keys `role` and `content` (found: `role`, `content`, `name`)"),
        ({"messages": [_msg("user"), {"role": "assistant"}]}, "messages[1] must have exactly the keys `role` and `content`"),
        ({"messages": [_msg("user"), _msg("assistant", 3)]}, "messages[1].content must be a string"),
        ({"messages": [_msg("user"), _msg("bot")]}, "messages[1].role 'bot' must be one of system, user, assistant"),
        ({"messages": [_msg("assistant"), _msg("user")]}, "messages[0].role is 'assistant', expected 'user'"),
        ({"messages": [_msg("user"), _msg("user"), _msg("assistant")]}, "messages[1].role is 'user', expected 'assistant'"),
        ({"messages": [_msg("user"), _msg("system"), _msg("assistant")]}, "messages[1]: `system` is allowed only as the first message"),
        ({"messages": [_msg("system"), _msg("user")]}, "the last message must be from the assistant"),
        ({"messages": [_msg("user"), _msg("assistant"), _msg("user")]}, "the last message must be from the assistant"),
        (["not", "an", "object"], "a record must be a JSON object, got list"),
    ],
)
def test_chat_rules(write_jsonl, record, rule):
    [(line, found)] = _problems(write_jsonl, [chat("ok", "fine"), record])
    assert line == 2
    assert found.startswith(rule)


def test_valid_chat_with_system_and_several_turns(write_jsonl):
    path = write_jsonl("ok.jsonl", [chat("q1", "a1", "q2", "a2", system="be brief")])
    [example] = load_and_validate(DataConfig(str(path), CHAT, 128))
    assert [m.role for m in example.messages] == ["system", "user", "assistant", "user", "assistant"]


def test_a_model_without_a_system_role_rejects_system_messages(write_jsonl):
    problems = _problems(write_jsonl, [chat("q", "a"), chat("q", "a", system="s")], accepts_system_role=False)
    assert problems == [(2, "messages[0]: this model does not accept a `system` message; "
                            "remove it or merge it into the first user message")]


def test_invalid_json_names_the_line_and_the_json_error(write_jsonl):
    [(line, rule)] = _problems(write_jsonl, [chat("q", "a"), '{"messages": [', chat("q", "a")])
    assert line == 2
    assert rule.startswith("invalid JSON: Expecting value (column 15)")


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        ({"prompt": "p"}, "must have exactly `prompt` and `response`, or `prompt` and `completion` (found: `prompt`)"),
        ({"prompt": "p", "response": "r", "completion": "c"}, "must have exactly `prompt` and `response`"),
        ({"prompt": 1, "response": "r"}, "`prompt` must be a string"),
        ({"prompt": "p", "completion": None}, "`completion` must be a string"),
    ],
)
def test_instruction_rules(write_jsonl, record, rule):
    [(line, found)] = _problems(write_jsonl, [record], TaskType.INSTRUCTION_FINETUNE)
    assert (line, found[: len(rule)]) == (1, rule)


def test_instruction_accepts_response_or_completion(write_jsonl):
    path = write_jsonl("i.jsonl", [{"prompt": "p1", "response": "r1"}, {"prompt": "p2", "completion": "c2"}])
    examples = load_and_validate(DataConfig(str(path), TaskType.INSTRUCTION_FINETUNE, 128))
    assert [(e.prompt, e.response) for e in examples] == [("p1", "r1"), ("p2", "c2")]


def test_empty_text_file_is_a_problem(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("fine")
    (tmp_path / "docs" / "b.txt").write_text("  \n")
    with pytest.raises(DataValidationError) as caught:
        load_and_validate(DataConfig(str(tmp_path / "docs"), TaskType.CONTINUED_PRETRAIN, 128))
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}/docs/b.txt: the text is empty"]


def test_every_problem_is_collected_and_the_list_is_capped(write_jsonl):
    path = write_jsonl("many.jsonl", [{"bad": i} for i in range(MAX_REPORTED + 20)] + [chat("q", "a")])
    with pytest.raises(DataValidationError) as caught:
        load_and_validate(DataConfig(str(path), CHAT, 128))
    error = caught.value
    assert error.total == MAX_REPORTED + 20
    assert [p.line for p in error.problems] == list(range(1, MAX_REPORTED + 1))
    assert str(error).endswith("… and 20 more")
    assert isinstance(error, ValueError)


def test_an_empty_dataset_is_an_error(write_jsonl):
    path = write_jsonl("empty.jsonl", ["", "   "])
    with pytest.raises(DataValidationError) as caught:
        load_and_validate(DataConfig(str(path), CHAT, 128))
    assert [str(p) for p in caught.value.problems] == [f"{path}: the dataset has no examples"]
