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

EXIT_USER_ERROR = 1
EXIT_UNAVAILABLE = 3
OUTPUT_FORMATS = ("yaml", "json")


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
        except fm.ClusterUnavailableError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except (fm.KubetuneError, fm.SpecError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USER_ERROR

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
    parser.set_defaults(func=list_runs)

    parser = subparsers.add_parser("get", parents=parent, help="show one run: status, progress, checkpoints, model")
    parser.add_argument("name")
    parser.add_argument("-o", "--output", choices=OUTPUT_FORMATS, help="print the FineTuneRun object instead")
    parser.set_defaults(func=get_run)

    parser = subparsers.add_parser("cancel", parents=parent, help="stop runs (their checkpoints are kept)")
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.set_defaults(func=cancel_runs)

    parser = subparsers.add_parser("delete", parents=parent, help="delete runs and everything they own")
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.set_defaults(func=delete_runs)


@command
def list_runs(args: argparse.Namespace) -> int:
    from kubetune import foundation_model as fm

    runs = fm.list(statuses=args.statuses, before=args.before, after=args.after, limit=args.limit)
    if not runs:
        print("No fine-tuning runs found.", file=sys.stderr)
        return 0
    print(render_table(runs_table(runs, datetime.now(timezone.utc))))
    return 0


@command
def get_run(args: argparse.Namespace) -> int:
    from kubetune import foundation_model as fm

    run = fm.get(args.name)
    if args.output:
        print(render_resource(run.resource, args.output), end="")
    else:
        print(describe(run, datetime.now(timezone.utc)))
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


def runs_table(runs: list, now: datetime) -> list[tuple[str, ...]]:
    rows = [TABLE_COLUMNS]
    for run in runs:
        rows.append((run.name, str(run.status), progress_text(run), loss_text(run), run.model or "-", age_text(run.created_at, now)))
    return rows


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
        ("MLflow experiment", run.experiment_id or run.submitted_experiment_path), ("MLflow run", run.run_id),
        ("Registered model", f"{run.registered_model.name} version {run.registered_model.version}" if run.registered_model else None),
    ]
    text = [f"{label + ':':<19}{value}" for label, value in lines if value not in (None, "")]
    text.append("Checkpoints:" + ("" if run.checkpoints else " none yet"))
    text += [f"  {c.name:<16} step {c.step:<8} {c.path}" for c in run.checkpoints]
    text.append("Events:")
    text += [f"  {event}" for event in run.events[-10:]]
    return "\n".join(text)


def _when(moment: datetime | None, now: datetime) -> str | None:
    if moment is None:
        return None
    delta = (moment - now).total_seconds()
    from kubetune.sdk.timeutil import humanize_duration

    relative = f"in {humanize_duration(delta)}" if delta > 0 else f"{humanize_duration(-delta)} ago"
    return f"{moment.isoformat(timespec='seconds')} ({relative})"


def render_resource(resource: dict[str, Any], output: str) -> str:
    """The object as kubectl would print it, without managedFields noise."""
    metadata = {k: v for k, v in (resource.get("metadata") or {}).items() if k != "managedFields"}
    cleaned = {**resource, "metadata": metadata}
    if output == "json":
        return json.dumps(cleaned, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(cleaned, sort_keys=False)
