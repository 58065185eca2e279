"""How the trainer tells the operator what an ended attempt means: a user error, a preemption, or a fault.

- A user error (bad data, model or checkpoint path, a context longer than the model's) fails the same way
  on every retry, so the operator ends the run at once with the trainer's message.
- A preemption (SIGTERM: a node drained, a pod preempted or evicted) is not a failure of the run: the
  trainer finished its step and wrote a checkpoint, and the operator starts the next attempt from it at
  once, without charging the retry budget (the attempt is counted in status.preemptions).
- Anything else is a transient fault: the run resumes from its latest checkpoint within its retry budget,
  after a backoff.

The trainer says so twice: its process exits with the class's exit code, and it leaves its message,
marked, as the container's termination message. The mark is what reaches the operator in a cluster:
torchrun, the container's command, exits 1 whatever code its workers exit with.

The validation step speaks the same way for a model folder that would run out of GPU memory (`kubetune
plan-memory`, which reads the folder's config.json before any GPU is asked for): the operator ends the run
DoesNotFit with its message, as it does at admission for the supported models.
"""

from enum import Enum
from pathlib import Path

from kubetune.api.redaction import redact

USER_ERROR_EXIT = 2
PREEMPTED_EXIT = 143  # 128 + SIGTERM: the conventional status of a process ended by SIGTERM
DOES_NOT_FIT_EXIT = 3  # `kubetune plan-memory`: the model would run out of GPU memory (not 1, a crash's; nor 2)
USER_ERROR_MARK = "[kubetune:user-error] "
PREEMPTED_MARK = "[kubetune:preempted] "
DOES_NOT_FIT_MARK = "[kubetune:does-not-fit] "
# Kubernetes keeps what a container writes here as its termination message (terminationMessagePath's default).
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes the kubelet keeps


class EndedAs(str, Enum):
    USER_ERROR = "UserError"
    PREEMPTED = "Preempted"
    DOES_NOT_FIT = "DoesNotFit"
    FAULT = "Fault"


_MARKS = {EndedAs.USER_ERROR: USER_ERROR_MARK, EndedAs.PREEMPTED: PREEMPTED_MARK, EndedAs.DOES_NOT_FIT: DOES_NOT_FIT_MARK}


def termination_message(ended_as: EndedAs, text: str) -> str:
    """The marked termination message, within what the kubelet keeps, its credentials masked (it reaches status)."""
    message = _MARKS.get(ended_as, "") + redact(text)
    return message.encode()[:TERMINATION_MESSAGE_LIMIT].decode(errors="ignore")


def leave_termination_message(path: Path, message: str) -> None:
    """In a pod, the container's termination message: how the operator learns what the end means (an exit
    code alone does not reach it through torchrun). The file exists only where the kubelet mounted it, so
    local runs write nothing."""
    if path.is_file():
        try:
            path.write_text(message)
        except OSError:
            pass


def user_error_message(text: str) -> str:
    return termination_message(EndedAs.USER_ERROR, text)


def read_termination_message(message: str) -> tuple[EndedAs, str]:
    """(what the trainer called the end of its attempt, the message without the mark)."""
    for ended_as, mark in _MARKS.items():
        if message.startswith(mark):
            return ended_as, message[len(mark):]
    return EndedAs.FAULT, message

