"""`kubetune events NAME [--follow]`: a run's history; --follow adds a progress bar until the run ends."""

import argparse
import sys

from kubetune.cli.runs import EXIT_USER_ERROR, command, kube_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("events", parents=[kube_options()], help="show a run's events (--follow: live)")
    parser.add_argument("name")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing events, with a progress bar, until the run ends")
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
    return EXIT_USER_ERROR if final.status == fm.RunStatus.FAILED else 0


def follow_with_progress(name: str, interval: float):
    """Prints each new event above a tqdm bar driven by status.progress.percent; returns the final run."""
    from tqdm import tqdm

    from kubetune import foundation_model as fm
    from kubetune.sdk.events import unseen

    seen: set = set()
    run = None
    with tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}% {postfix}") as bar:
        for run in fm.follow(name, poll_seconds=interval):
            for event in unseen(run.events, seen):
                bar.write(str(event), file=sys.stdout)
            update_bar(bar, run)
    return run


def update_bar(bar, run) -> None:
    percent = run.progress.percent if run.progress and run.progress.percent is not None else None
    if percent is not None:
        bar.n = percent
    elif run.status == "COMPLETED":
        bar.n = 100
    bar.set_description_str(str(run.status))
    loss = run.metrics.train_loss if run.metrics else None
    eta = run.progress.display if run.progress and run.progress.display else ""
    bar.set_postfix_str(" ".join(p for p in (f"loss {loss:.4g}" if loss is not None else "", eta) if p))
    bar.refresh()
