"""User-facing spec errors: every problem names its field, and its file and line when known."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecProblem:
    field: str  # dotted camelCase path, e.g. "spec.trainingDuration"
    rule: str  # what the value must satisfy
    value: object = None
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}{self.field}: {self.rule}{shown}"


class SpecError(ValueError):
    """A FineTuneRun spec that cannot run. Lists every problem at once."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        super().__init__("invalid FineTuneRun:\n" + "\n".join(f"  - {p}" for p in problems))

    def with_location(self, file: str, lines: dict[str, int]) -> "SpecError":
        """The same problems, each pointing at the manifest line of its field (or its nearest parent)."""
        located = []
        for p in self.problems:
            path = p.field
            while path and path not in lines:
                path = path.rpartition(".")[0]
            located.append(SpecProblem(p.field, p.rule, p.value, file, lines.get(path)))
        return SpecError(located)
