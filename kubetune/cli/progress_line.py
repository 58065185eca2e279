"""The one progress line of `kubetune events --follow` and `kubetune run --local`: redrawn in place on a
terminal, absent everywhere else (a pipe, a file, a CI log), where only the event lines are printed.

A plain carriage return and spaces, no cursor escapes, so it reads the same on any terminal.
"""

import shutil
import sys
from typing import TextIO

from kubetune.sdk.timeutil import humanize_duration


def progress_text(
    stage: str, percent: float | None = None, step: int | None = None, total_steps: int | None = None,
    loss: float | None = None, eta_seconds: float | None = None,
) -> str:
    """`RUNNING 62% step 31/50 loss 2.00 ETA 7s`: each part only when known."""
    parts = [stage]
    if percent is not None:
        parts.append(f"{percent:.0f}%")
    if step and total_steps:
        parts.append(f"step {step}/{total_steps}")
    if loss is not None:
        parts.append(f"loss {loss:#.3g}")
    if eta_seconds is not None and eta_seconds > 0:
        parts.append(f"ETA {humanize_duration(eta_seconds)}")
    return " ".join(parts)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressLine:
    """A line on `stream` that each show() replaces; print_above() puts an event line above it.

    Disabled (every call does nothing) unless `enabled`, by default: whether `stream` is a terminal.
    """

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool | None = None):
        self.stream = stream
        self.enabled = is_terminal(stream) if enabled is None else enabled
        self._text = ""

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        text = text[: max(1, shutil.get_terminal_size().columns - 1)]
        self.stream.write("\r" + text.ljust(len(self._text)))
        self.stream.flush()
        self._text = text

    def print_above(self, line: str, out: TextIO) -> None:
        """Prints `line` on `out` (stdout, or the line's own stream), then draws the progress line again under it."""
        text = self._text
        self.clear()
        print(line, file=out, flush=True)
        if text:
            self.show(text)

    def clear(self) -> None:
        if self.enabled and self._text:
            self.stream.write("\r" + " " * len(self._text) + "\r")
            self.stream.flush()
        self._text = ""
