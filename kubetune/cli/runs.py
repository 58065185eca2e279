"""`kubetune list|get|cancel|delete`: manage FineTuneRuns in a cluster, through the SDK.

Every run command takes -n/--namespace, --kubeconfig and --context (kubectl's
meaning); `kubetune create` and `kubetune events` reuse them from here.
"""

import argparse
import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from kubetune.cli.errors import (
    EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, fail, kubeconfig_message, one_line, unavailable_message,
)

OUTPUT_FORMATS = ("json", "yaml", "name", "wide")


def kube_options() -> argparse.ArgumentParser:
    """The connection options, as a parent parser for each run command."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("cluster")
    group.add_argument("-n", "--namespace", help="namespace of the runs (default: the kubeconfig context's)")
    group.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    group.add_argument("--context", help="kubeconfig context (default: the current context)")
    return parent


def command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Connects the SDK as the options say, and prints SDK errors as one clear message with an exit code."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from kubetune import foundation_model as fm

        fm.configure(namespace=args.namespace, kubeconfig=args.kubeconfig, context=args.context)
        try:
            return func(args)
        except fm.KubeconfigError as error:
            return fail(kubeconfig_message(error), EXIT_USAGE)
        except fm.ClusterUnavailableError as error:
            return fail(unavailable_message(error), EXIT_UNAVAILABLE)
        except fm.KubetuneError as error:
            return fail(f"error: {error}", EXIT_FAILED)
        except (fm.SpecError, ValueError) as error:
            return fail(f"error: {error}", EXIT_USAGE)

    return run


def register(subparsers) -> None:
    parent = [kube_options()]
    parser = subparsers.add_parser("list", parents=parent, help="list fine-tuning runs, newest first")
    parser.add_argument("-s", "--status", action="append", dest="statuses", metavar="STATUS",
                        help="only runs with this status (PENDING, QUEUED, STARTING, RUNNING, TERMINATING, "
                        "COMPLETED, STOPPED, FAILED); repeatable")
    parser.add_argument("--after", help="only runs created at or after this date/time (ISO, local time)")
    parser.add_argument("--before", help="only runs created before this date/time (ISO, local time)")
    parser.add_argument("--limit", type=int, default=100, help="at most this many runs (default: 100)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="runs of every namespace (a NAMESPACE column)")
    parser.add_argument("-o", "--output", choices=OUTPUT_FORMATS,
                        help="json|yaml: the FineTuneRun objects as a List; wide: more columns; name: finetunerun.kubetune.io/NAME")
    parser.set_defaults(func=list_runs)

    parser = subparsers.add_parser("get", parents=parent, help="show one run: status, progress, checkpoints, model")
    parser.add_argument("name")
    parser.add_argument("-o", "--output", choices=OUTPUT_FORMATS,
                        help="json|yaml: the FineTuneRun object; wide: a table row with more columns; name: finetunerun.kubetune.io/NAME")
    parser.set_defaults(func=get_run)

    parser = subparsers.add_parser("cancel", parents=parent, help="stop runs (their checkpoints are kept)")
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.set_defaults(func=cancel_runs)

    parser = subparsers.add_parser("delete", parents=parent, help="delete runs and everything they own")
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.set_defaults(func=delete_runs)


@command
def list_runs(args: argparse.Namespace) -> int:
    from kubetune.sdk.filters import filter_runs

    runs = filter_runs(
        list_resources(args.all_namespaces), statuses=args.statuses, before=args.before, after=args.after, limit=args.limit,
    )
    if not runs and args.output in (None, "wide"):
        print("No fine-tuning runs found.", file=sys.stderr)
        return 0
    print(render_runs(runs, args.output, datetime.now(timezone.utc), all_namespaces=args.all_namespaces), end="")
    return 0


def list_resources(all_namespaces: bool) -> list[dict[str, Any]]:
    """The FineTuneRun objects of the configured namespace, or of every namespace (kubectl's -A)."""
    from kubetune.api import GROUP, PLURAL, VERSION
    from kubetune.sdk.client import REQUEST_TIMEOUT_SECONDS, get_client, translate_errors

    client = get_client()
    if not all_namespaces:
        return client.list()
    with translate_errors("list", "", "(all namespaces)"):
        return client.api.list_cluster_custom_object(GROUP, VERSION, PLURAL, _request_timeout=REQUEST_TIMEOUT_SECONDS)["items"]


@command
def get_run(args: argparse.Namespace) -> int:
    from kubetune import foundation_model as fm

    run = fm.get(args.name)
    now = datetime.now(timezone.utc)
    if args.output in ("json", "yaml"):
        print(render_resource(run.resource, args.output), end="")
    elif args.output:
        print(render_runs([run], args.output, now), end="")
    else:
        print(describe(run, now))
    return 0


@command
def cancel_runs(args: argparse.Namespace) -> int:
    from kubetune import foundation_model as fm

    for name in args.names:
        if fm.cancel(name):
            print(f"{name}: cancelling (checkpoints are kept)")
        else:
            print(f"{name}: already {fm.get(name).status}, nothing to cancel")
    return 0


@command
def delete_runs(args: argparse.Namespace) -> int:
    from kubetune import foundation_model as fm

    for name in args.names:
        fm.delete(name)
        print(f"{name}: deleted")
    return 0


# Rendering: pure functions of run objects.

TABLE_COLUMNS = ("NAME", "STATUS", "PROGRESS", "LOSS", "MODEL", "AGE")
WIDE_COLUMNS = (  # as `kubectl get ftr -o wide`
    "GPU-SECONDS", "QUEUE-WAIT-S", "FIRST-STEP-S", "COST", "REGISTERED", "RESTARTS", "PREEMPTIONS", "MESSAGE",
)


def render_runs(runs: list, output: str | None, now: datetime, all_namespaces: bool = False) -> str:
    """`kubetune list -o ...`: a table (wide: more columns), the objects as a kubectl List, or their names."""
    from kubetune.api import GROUP, SINGULAR

    if output in ("json", "yaml"):
        return render_object(as_list([run.resource for run in runs]), output)
    if output == "name":
        return "".join(f"{SINGULAR}.{GROUP}/{run.name}\n" for run in runs)
    return render_table(runs_table(runs, now, wide=output == "wide", all_namespaces=all_namespaces)) + "\n"


def runs_table(runs: list, now: datetime, wide: bool = False, all_namespaces: bool = False) -> list[tuple[str, ...]]:
    namespace_column = ("NAMESPACE",) if all_namespaces else ()
    rows = [namespace_column + TABLE_COLUMNS + (WIDE_COLUMNS if wide else ())]
    for run in runs:
        row = (run.name, str(run.status), progress_text(run), loss_text(run), run.model or "-", age_text(run.created_at, now))
        rows.append(((run.namespace or "-",) if all_namespaces else ()) + row + (wide_cells(run) if wide else ()))
    return rows


def wide_cells(run) -> tuple[str, ...]:
    model = run.registered_model
    registered = f"{model.name} v{model.version}" if model else "-"
    usage = [run.usage.gpu_seconds, run.usage.queue_wait_seconds, run.usage.time_to_first_step_seconds,
             run.usage.estimated_cost] if run.usage else [None] * 4
    usage_cells = tuple("-" if value is None else f"{value:g}" for value in usage)
    return (*usage_cells, registered, str(run.restarts or 0), str(run.preemptions or 0), one_line(run.details or "-"))


def render_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def progress_text(run) -> str:
    progress = run.progress
    if progress is None:
        return "-"
    if progress.display:
        return progress.display
    return f"{progress.percent}%" if progress.percent is not None else "-"


def loss_text(run) -> str:
    loss = run.metrics.train_loss if run.metrics else None
    return f"{loss:.4g}" if loss is not None else "-"


def age_text(created: datetime | None, now: datetime) -> str:
    from kubetune.sdk.timeutil import humanize_duration

    return humanize_duration((now - created).total_seconds()) if created else "-"


def describe(run, now: datetime) -> str:
    """The `kubetune get NAME` page: what a person checks on a run, one fact per line."""
    lines = [
        ("Name", run.name), ("Namespace", run.namespace), ("Status", f"{run.status} (phase {run.phase or '-'})"),
        ("Details", run.details), ("Model", run.model), ("Task", run.task_type),
        ("Train data", run.train_data_path), ("Eval data", run.eval_data_path), ("Register to", run.register_to),
        ("Training duration", run.training_duration), ("Learning rate", run.learning_rate),
        ("Context length", run.context_length), ("Custom weights", run.custom_weights_path),
        ("Compute", json.dumps(run.compute) if run.compute else None),
        ("Created", _when(run.created_at, now)), ("Started", _when(run.started_at, now)),
        ("Estimated end", _when(run.estimated_end_time, now)), ("Completed", _when(run.completed_at, now)),
        ("Progress", progress_text(run) if run.progress else None), ("Train loss", loss_text(run) if run.metrics else None),
        ("Eval loss", run.metrics.eval_loss if run.metrics else None),
        ("Tokens/s", run.metrics.tokens_per_second if run.metrics else None),
        ("Restarts", run.restarts or None), ("Preemptions", run.preemptions or None),
        *usage_lines(run.usage),
        ("MLflow experiment", run.experiment_id or run.submitted_experiment_path), ("MLflow run", run.run_id),
        ("Registered model", f"{run.registered_model.name} version {run.registered_model.version}" if run.registered_model else None),
    ]
    text = [f"{label + ':':<19}{value}" for label, value in lines if value not in (None, "")]
    text.append("Checkpoints:" + ("" if run.checkpoints else " none yet"))
    text += [f"  {c.name:<16} step {c.step:<8} {c.path}" for c in run.checkpoints]
    text.append("Events:")
    text += [f"  {event}" for event in run.events[-10:]]
    return "\n".join(text)


def usage_lines(usage) -> list[tuple[str, Any]]:
    """status.usage on the `get` page (absent parts left out)."""
    if usage is None:
        return []
    return [
        ("GPU usage", f"{usage.gpu_seconds} GPU-seconds ({usage.gpu_seconds / 3600:.2f} GPU-hours)" + (
            f" on {usage.gpus} GPUs of pool {usage.pool}" if usage.gpus is not None else "")),
        ("Queue wait", f"{usage.queue_wait_seconds} s" if usage.queue_wait_seconds is not None else None),
        ("First step after", f"{usage.time_to_first_step_seconds} s" if usage.time_to_first_step_seconds is not None else None),
        ("Estimated cost", f"{usage.estimated_cost:.2f}" if usage.estimated_cost is not None else None),
    ]


def _when(moment: datetime | None, now: datetime) -> str | None:
    if moment is None:
        return None
    delta = (moment - now).total_seconds()
    from kubetune.sdk.timeutil import humanize_duration

    relative = f"in {humanize_duration(delta)}" if delta > 0 else f"{humanize_duration(-delta)} ago"
    return f"{moment.isoformat(timespec='seconds')} ({relative})"


def render_resource(resource: dict[str, Any], output: str) -> str:
    """The object as kubectl would print it, without managedFields noise."""
    return render_object(without_managed_fields(resource), output)


def as_list(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Several objects as `kubectl get -o json|yaml` prints them: a v1 List."""
    return {"apiVersion": "v1", "kind": "List", "items": [without_managed_fields(r) for r in resources],
            "metadata": {"resourceVersion": ""}}


def without_managed_fields(resource: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (resource.get("metadata") or {}).items() if k != "managedFields"}
    return {**resource, "metadata": metadata}


def render_object(obj: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)
