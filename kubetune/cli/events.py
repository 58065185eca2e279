"""`kubetune events NAME [--follow]`: a run's history; --follow keeps printing new events until the run ends.

With --follow on a terminal, one progress line (`RUNNING 62% step 31/50 loss 2.00 ETA 7s`) is redrawn
under the events; into a pipe or a file only the event lines are written.
"""

import argparse
import sys
from datetime import datetime, timezone

from kubetune.cli.errors import EXIT_FAILED
from kubetune.cli.runs import command, kube_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("events", parents=[kube_options()], help="show a run's events (--follow: live)")
    parser.add_argument("name")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep printing events until the run ends (on a terminal, under a progress line)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between checks with --follow (default 2)")
    parser.set_defaults(func=show_events)


@command
def show_events(args: argparse.Namespace) -> int:
    from kubetune import foundation_model as fm

    if not args.follow:
        for event in fm.get_events(args.name):
            print(event)
        return 0
    final = follow_with_progress(args.name, args.interval)
    print(f"{final.name}: {final.status}" + (f": {final.details}" if final.details else ""))
    return EXIT_FAILED if final.status == fm.RunStatus.FAILED else 0


def follow_with_progress(name: str, interval: float):
    """Prints each new event, with the progress line under them on a terminal; returns the final run."""
    from kubetune import foundation_model as fm
    from kubetune.cli.progress_line import ProgressLine, is_terminal
    from kubetune.sdk.events import unseen

    line = ProgressLine(sys.stderr, enabled=is_terminal(sys.stdout) and is_terminal(sys.stderr))
    seen: set = set()
    run = None
    try:
        for run in fm.follow(name, poll_seconds=interval):
            for event in unseen(run.events, seen):
                line.print_above(str(event), sys.stdout)
            line.show(run_progress_text(run, datetime.now(timezone.utc)))
    finally:
        line.clear()
    return run


def run_progress_text(run, now: datetime) -> str:
    """The progress line of a run: its status, and what status.progress and status.metrics know."""
    from kubetune.cli.progress_line import progress_text

    progress = run.progress
    percent = progress.percent if progress else None
    if percent is None and run.status == "COMPLETED":
        percent = 100
    eta = (run.estimated_end_time - now).total_seconds() if run.estimated_end_time else None
    return progress_text(
        str(run.status), percent, progress.step if progress else None, progress.total_steps if progress else None,
        run.metrics.train_loss if run.metrics else None, eta,
    )
