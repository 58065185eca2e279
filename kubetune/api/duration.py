"""`trainingDuration`: how long to train, in epochs, tokens or batches."""

import re
from dataclasses import dataclass
from typing import Literal

DURATION_PATTERN = r"^[1-9][0-9]*(ep|tok|ba)$"
DURATION_RULE = "must be a positive whole number followed by ep (epochs), tok (tokens) or ba (batches), e.g. 3ep, 1000000tok, 500ba"
_DURATION = re.compile(DURATION_PATTERN)

Unit = Literal["ep", "tok", "ba"]


@dataclass(frozen=True)
class TrainingDuration:
    value: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> "TrainingDuration":
        text = str(text).strip()
        m = _DURATION.match(text)
        if not m:
            raise ValueError(DURATION_RULE)
        return cls(int(text[: -len(m[1])]), m[1])  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.value}{self.unit}"
