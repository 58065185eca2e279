"""`kubetune models`: the supported-models table (context length, learning rate, system role)."""

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the supported base models and their limits")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.api.supported_models import SUPPORTED_MODELS

    rows = [("MODEL", "MAX CONTEXT", "DEFAULT LR", "SYSTEM ROLE")]
    rows += [(m.name, str(m.max_context_length), f"{m.default_learning_rate:g}", "yes" if m.accepts_system_role else "no")
             for m in SUPPORTED_MODELS.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("\nAny other model: give the path or URI of a Hugging Face model folder (/..., pvc://..., s3://..., hf://org/name).")
    return 0
