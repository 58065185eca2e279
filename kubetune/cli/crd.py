"""`kubetune crd`: print the FineTuneRun CRD, or write it to crds/ and the chart with --write."""

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("crd", help="print (or --write) the generated FineTuneRun CRD")
    parser.add_argument("--write", action="store_true", help="write crds/ and charts/kubetune/crds/ instead of printing")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root for --write (default: .)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.api.crd import render_crd, write_crd

    if args.write:
        for path in write_crd(args.root):
            print(f"wrote {path}")
    else:
        sys.stdout.write(render_crd())
    return 0
