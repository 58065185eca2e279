"""The records that flow through the data pipeline, each remembering where it came from."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """Where a record was read: a file (or dataset/table name) and a 1-based line or row; None for a whole file."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True)
class RawRecord:
    """One record as read from a source, before validation.

    `value` is the decoded JSON object or table row (a dict), or the text of a `.txt`
    file; `error` is set instead when the record could not be decoded (bad JSON, bad UTF-8).
    """

    origin: Origin
    value: object = None
    error: str | None = None


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Example:
    """A validated training example; exactly one of the three shapes is filled, by task type.

    CHAT_COMPLETION: `messages`; INSTRUCTION_FINETUNE: `prompt` and `response`
    (a `completion` key is read into `response`); CONTINUED_PRETRAIN: `text`.
    """

    origin: Origin
    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    response: str | None = None
    text: str | None = None
