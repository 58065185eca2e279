"""`kubetune`: one console script; each subcommand lives in its own module.

A command module defines `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed arguments and returning an exit code.
"""

import argparse
import importlib
import sys

from kubetune.cli.errors import EXIT_CODES_HELP

# Modules are imported only to build the parser; each keeps heavy imports (torch,
# kopf, mlflow) inside its command function so `kubetune --help` stays fast.
COMMAND_MODULES = [
    "kubetune.cli.crd",
    "kubetune.cli.models",
    "kubetune.cli.validate_data",
    "kubetune.cli.validate_weights",
    "kubetune.cli.plan",
    "kubetune.cli.plan_memory",
    "kubetune.cli.create",
    "kubetune.cli.run",
    "kubetune.cli.runs",
    "kubetune.cli.events",
    "kubetune.cli.operator",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubetune", description="Fine-tune LLMs on Kubernetes.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def version_text() -> str:
    """`kubetune 0.1.0 (API kubetune.io/v1alpha1)`: the installed package and the FineTuneRun version it speaks."""
    from importlib.metadata import PackageNotFoundError, version

    from kubetune.api import API_VERSION

    try:
        package = version("kubetune")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        package = "unknown"
    return f"kubetune {package} (API {API_VERSION})"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
