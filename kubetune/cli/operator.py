"""`kubetune operator`: run the FineTuneRun operator (the operator image's entrypoint)."""

import argparse
import sys
from pathlib import Path

from kubetune.operator.logs import LOG_FORMATS


def register(subparsers) -> None:
    parser = subparsers.add_parser("operator", help="run the FineTuneRun operator (kopf)")
    parser.add_argument("--config", type=Path, default=Path("/etc/kubetune/operator.yaml"), help="operator configuration file")
    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch this namespace (repeatable); default: the config's namespaces, none there = the whole cluster",
    )
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="no peering: assume no other operator instance")
    peering.add_argument("--peering", metavar="NAME", help="kopf peering object shared by the operator's replicas")
    parser.add_argument("--liveness", metavar="URL", help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument(
        "--metrics", metavar="URL", help="serve Prometheus metrics, e.g. http://0.0.0.0:9090/metrics (docs/operator-guide.md)"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text: lines for a terminal (default); json: one JSON object per line, for a log pipeline",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.operator.config import ConfigError, OperatorConfig
    from kubetune.operator.metrics import parse_endpoint
    from kubetune.operator.runner import RunOptions
    from kubetune.operator.runner import run as run_operator

    try:
        config = OperatorConfig.load(args.config)
        if args.metrics:
            parse_endpoint(args.metrics)
    except (ConfigError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    options = RunOptions(
        namespaces=args.namespace if args.namespace is not None else list(config.namespaces),
        standalone=args.standalone,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        metrics_endpoint=args.metrics,
        verbose=args.verbose,
        log_format=args.log_format,
    )
    run_operator(config, options)
    return 0
