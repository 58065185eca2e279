"""The data rules, per task type: every broken record is reported with its file, line and rule.

Validation never stops at the first problem: it collects them all (keeping the
first MAX_REPORTED) so a user fixes a file in one pass.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from kubetune.api.spec import TaskType

from .records import Example, Message, Origin, RawRecord

MAX_REPORTED = 50
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class DataProblem:
    file: str
    line: int | None
    rule: str

    def __str__(self) -> str:
        return f"{self.file}: {self.rule}" if self.line is None else f"{self.file}:{self.line}: {self.rule}"


class DataValidationError(ValueError):
    """The data breaks the format rules; a user error, never retried.

    `problems` holds the first MAX_REPORTED problems, `total` counts them all.
    """

    def __init__(self, problems: list[DataProblem], total: int | None = None):
        self.problems = problems[:MAX_REPORTED]
        self.total = len(problems) if total is None else total
        super().__init__(self._describe())

    def _describe(self) -> str:
        lines = [f"{self.total} data problem(s):", *(f"  {p}" for p in self.problems)]
        if self.total > len(self.problems):
            lines.append(f"  … and {self.total - len(self.problems)} more")
        return "\n".join(lines)


class _ProblemLog:
    """Collects problems, keeping the first MAX_REPORTED and counting the rest."""

    def __init__(self) -> None:
        self.kept: list[DataProblem] = []
        self.total = 0

    def add(self, origin: Origin, rule: str) -> None:
        self.total += 1
        if len(self.kept) < MAX_REPORTED:
            self.kept.append(DataProblem(origin.file, origin.line, rule))

    def raise_if_any(self) -> None:
        if self.total:
            raise DataValidationError(self.kept, self.total)


def validate_records(
    records: Iterable[RawRecord], task_type: TaskType, *, accepts_system_role: bool = True, source: str = "data"
) -> list[Example]:
    """Turns raw records into examples, or raises DataValidationError naming every broken record."""
    log = _ProblemLog()
    examples: list[Example] = []
    for record in records:
        if record.error is not None:
            log.add(record.origin, record.error)
            continue
        rules = _problems_for(record.value, task_type, accepts_system_role)
        for rule in rules:
            log.add(record.origin, rule)
        if not rules:
            examples.append(_to_example(record, task_type))
    if not examples and not log.total:
        log.add(Origin(source), "the dataset has no examples")
    log.raise_if_any()
    return examples


def _problems_for(value: object, task_type: TaskType, accepts_system_role: bool) -> list[str]:
    if task_type is TaskType.CONTINUED_PRETRAIN:
        return text_problems(value)
    if not isinstance(value, dict):
        return [f"a record must be a JSON object, got {type(value).__name__}"]
    if task_type is TaskType.CHAT_COMPLETION:
        return chat_problems(value, accepts_system_role)
    return instruction_problems(value)


def chat_problems(record: dict, accepts_system_role: bool = True) -> list[str]:
    """Databricks' chat rules: `messages` only, roles alternate, optional system first, last is assistant."""
    if set(record) != {"messages"}:
        return [f"`messages` must be the only key (found: {_keys(record)})"]
    messages = record["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        return ["`messages` must be a list of at least two messages"]
    problems = [p for i, m in enumerate(messages) for p in _message_problems(i, m)]
    if problems:
        return problems
    return _role_order_problems([m["role"] for m in messages], accepts_system_role)


def _message_problems(index: int, message: object) -> list[str]:
    where = f"messages[{index}]"
    if not isinstance(message, dict) or set(message) != {"role", "content"}:
        found = _keys(message) if isinstance(message, dict) else type(message).__name__
        return [f"{where} must have exactly the keys `role` and `content` (found: {found})"]
    problems = []
    if message["role"] not in ROLES:
        problems.append(f"{where}.role {message['role']!r} must be one of {', '.join(ROLES)}")
    if not isinstance(message["content"], str):
        problems.append(f"{where}.content must be a string")
    return problems


def _role_order_problems(roles: list[str], accepts_system_role: bool) -> list[str]:
    problems = []
    start = 0
    if roles[0] == "system":
        start = 1
        if not accepts_system_role:
            problems.append(
                "messages[0]: this model does not accept a `system` message; "
                "remove it or merge it into the first user message"
            )
    for i, role in enumerate(roles[start:], start):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if role == "system":
            return problems + [f"messages[{i}]: `system` is allowed only as the first message"]
        if role != expected:
            return problems + [
                f"messages[{i}].role is {role!r}, expected {expected!r}: after an optional system message, "
                "roles alternate user/assistant starting with user"
            ]
    if roles[-1] != "assistant":
        problems.append("the last message must be from the assistant")
    return problems


def instruction_problems(record: dict) -> list[str]:
    keys = set(record)
    if keys not in ({"prompt", "response"}, {"prompt", "completion"}):
        return [f"must have exactly `prompt` and `response`, or `prompt` and `completion` (found: {_keys(record)})"]
    return [f"`{k}` must be a string" for k in sorted(keys) if not isinstance(record[k], str)]


def text_problems(value: object) -> list[str]:
    """Continued pre-training: a `.txt` file's text (or a row's `text` column) that is not empty."""
    if isinstance(value, dict):
        if set(value) != {"text"}:
            return [f"a continued-pretraining row must have exactly the key `text` (found: {_keys(value)})"]
        value = value["text"]
    if not isinstance(value, str):
        return [f"the text must be a string, got {type(value).__name__}"]
    if not value.strip():
        return ["the text is empty"]
    return []


def _to_example(record: RawRecord, task_type: TaskType) -> Example:
    value = record.value
    if task_type is TaskType.CONTINUED_PRETRAIN:
        return Example(record.origin, text=value["text"] if isinstance(value, dict) else value)
    if task_type is TaskType.CHAT_COMPLETION:
        return Example(record.origin, messages=tuple(Message(m["role"], m["content"]) for m in value["messages"]))
    return Example(record.origin, prompt=value["prompt"], response=value.get("response", value.get("completion")))


def _keys(record: dict) -> str:
    return ", ".join(f"`{k}`" for k in record) or "no keys"
