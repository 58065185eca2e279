"""How the trainer tells the operator whether a failure is worth a retry.

A user error (bad data, model or checkpoint path, a context longer than the model's) fails the same way
on every retry, so the operator ends the run at once with the trainer's message; any other failure is a
transient fault, and the run resumes from its latest checkpoint within its retry budget.

The trainer says so twice: its process exits with USER_ERROR_EXIT, and it leaves its message, marked,
as the container's termination message. The mark is what reaches the operator in a cluster: torchrun,
the container's command, exits 1 whatever code its workers exit with.
"""

USER_ERROR_EXIT = 2
USER_ERROR_MARK = "[kubetune:user-error] "
# Kubernetes keeps what a container writes here as its termination message (terminationMessagePath's default).
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes the kubelet keeps


def user_error_message(text: str) -> str:
    """The termination message of a user error, within what the kubelet keeps."""
    message = USER_ERROR_MARK + text
    return message.encode()[: TERMINATION_MESSAGE_LIMIT].decode(errors="ignore")


def read_termination_message(message: str) -> tuple[bool, str]:
    """(whether the trainer called it a user error, the message without the mark)."""
    if message.startswith(USER_ERROR_MARK):
        return True, message[len(USER_ERROR_MARK):]
    return False, message
