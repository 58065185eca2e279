"""The CLI's exit codes, and its one-line messages for a cluster it cannot use.

The SDK's errors speak to Python callers (`configure(kubeconfig=...)`); these say the same in the CLI's
own flags (--kubeconfig, --context) and environment (KUBECONFIG), on one line, with no traceback.
"""

import sys

EXIT_FAILED = 1  # the run failed (events --follow), or the API server refused the operation (no such run, RBAC, schema)
EXIT_USAGE = 2  # usage or input: bad flags, an invalid manifest, no usable kubeconfig (as argparse's own errors)
EXIT_UNAVAILABLE = 3  # the API server could not be reached, or answered 429/5xx: transient, retrying may help

# `kubetune --help`'s epilog; docs/user-guide.md ("The command line") says the same.
EXIT_CODES_HELP = f"""\
exit codes:
  0  success
  {EXIT_FAILED}  the run failed (events --follow, run --local), or the cluster refused the operation
     (no such run, not allowed, rejected by the API server)
  {EXIT_USAGE}  usage or input error: bad flags or arguments, an invalid manifest, no usable kubeconfig
  {EXIT_UNAVAILABLE}  the Kubernetes API server could not be reached or answered 429/5xx (transient: retry)
  and per command: validate-data 1 invalid data; validate-weights 1 no such checkpoint;
  plan 1 does not fit; plan-memory 3 does not fit (the validation step's DoesNotFit)
"""


def fail(message: str, code: int) -> int:
    print(f"kubetune: {message}", file=sys.stderr)
    return code


def kubeconfig_message(error: Exception) -> str:
    """`no kubeconfig at X and not running inside a cluster (use --kubeconfig FILE or set KUBECONFIG)`."""
    from kubetune import kube_client

    # The SDK raises its error while handling kube_client's, whose message has no SDK advice in it.
    reason = error.__context__ if isinstance(error.__context__, kube_client.KubeconfigError) else error
    return f"{one_line(reason)} (use --kubeconfig FILE or set KUBECONFIG; --context picks a context)"


def unavailable_message(error: Exception) -> str:
    """`cannot reach the Kubernetes API server at URL: connection refused (check --kubeconfig / --context)`;
    an answer (429, 5xx) is shown as the SDK words it."""
    from urllib3.exceptions import HTTPError

    if not isinstance(error.__cause__, HTTPError):
        return one_line(error)
    return (f"cannot reach the Kubernetes API server at {server_url()}: {connection_failure(error.__cause__)} "
            "(check --kubeconfig / --context)")


def server_url() -> str:
    from kubetune.sdk.client import get_client

    return get_client().api.api_client.configuration.host


def connection_failure(error: BaseException) -> str:
    """Why a connection failed, in the operating system's few words ("connection refused", "timed out")."""
    cause: BaseException = getattr(error, "reason", None) or error  # urllib3's MaxRetryError: the last attempt's error
    seen = {id(cause)}
    while (inner := cause.__cause__ or cause.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        cause = inner
    text = (cause.strerror if isinstance(cause, OSError) and cause.strerror else None) or str(cause) or type(cause).__name__
    return one_line(text[:1].lower() + text[1:])


def one_line(text: object) -> str:
    return " ".join(str(text).split())
