"""`kubetune create`: start a fine-tuning run from flags (like fm.create) or from a manifest (-f).

Every spec problem is reported before anything is sent; from a manifest, each
names its file and line.
"""

import argparse
from pathlib import Path
from typing import Any

from kubetune.cli.runs import command, kube_options

# Flags that become fm.create() arguments (dest → argument), so -f and flags can't be mixed by accident.
SPEC_FLAGS = (
    "model", "train_data_path", "register_to", "task_type", "eval_data_path", "eval_prompts",
    "custom_weights_path", "training_duration", "learning_rate", "context_length", "validate_inputs",
    "experiment_path", "pool", "gpus", "nodes", "gpus_per_node",
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "create", parents=[kube_options()], help="start a fine-tuning run (from flags or -f manifest.yaml)",
        description="Start a fine-tuning run. Flags mirror kubetune.foundation_model.create().",
    )
    parser.add_argument("-f", "--filename", type=Path, help="a FineTuneRun manifest (YAML)")
    parser.add_argument("--name", help="run name (default: <model>-<random>, or the manifest's)")
    spec = parser.add_argument_group("run (instead of -f)")
    spec.add_argument("--model", help="a supported model (kubetune models) or a Hugging Face model folder URI")
    spec.add_argument("--train-data-path", help="pvc://CLAIM/path, s3://…, a local path, or org/dataset/split")
    spec.add_argument("--register-to", help="<catalog>.<schema>[.<name>] in the MLflow model registry")
    spec.add_argument("--task-type", choices=("CHAT_COMPLETION", "INSTRUCTION_FINETUNE", "CONTINUED_PRETRAIN"))
    spec.add_argument("--eval-data-path")
    spec.add_argument("--eval-prompt", action="append", dest="eval_prompts", metavar="PROMPT", help="repeatable")
    spec.add_argument("--custom-weights-path", help="a checkpoint path or an earlier run's name")
    spec.add_argument("--training-duration", help="e.g. 3ep, 1000000tok, 500ba (default 1ep)")
    spec.add_argument("--learning-rate", help="e.g. 5e-6 (default: the model's)")
    spec.add_argument("--context-length", type=int)
    spec.add_argument("--no-validate-inputs", dest="validate_inputs", action="store_false", default=None,
                      help="skip checking data access and format before training")
    spec.add_argument("--experiment-path", help="MLflow experiment (default /Users/<namespace>/<run name>)")
    spec.add_argument("--pool", help="node pool from the operator configuration")
    spec.add_argument("--gpus", type=int, help="total GPUs")
    spec.add_argument("--nodes", type=int)
    spec.add_argument("--gpus-per-node", type=int)
    parser.set_defaults(func=create_run)


@command
def create_run(args: argparse.Namespace) -> int:
    from kubetune import foundation_model as fm
    from kubetune.sdk.api import submit

    given = [flag for flag in SPEC_FLAGS if getattr(args, flag) is not None]
    if args.filename and given:
        raise ValueError(f"use either -f or run flags, not both (got -f and --{given[0].replace('_', '-')})")
    if args.filename:
        spec, metadata = spec_from_manifest(args.filename)
        run = submit(
            spec, name=args.name or metadata.get("name"), namespace=args.namespace or metadata.get("namespace"),
            labels=metadata.get("labels"), annotations=metadata.get("annotations"),
        )
    else:
        missing = [f"--{f.replace('_', '-')}" for f in ("model", "train_data_path", "register_to") if getattr(args, f) is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (or use -f manifest.yaml)")
        run = fm.create(**create_arguments(args))
    print(f"finetunerun.kubetune.io/{run.name} created in namespace {run.namespace} ({run.status})")
    print(f"follow it with: kubetune events {run.name} -n {run.namespace} --follow")
    return 0


def create_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """fm.create()'s keyword arguments from the flags that were given."""
    arguments = {
        flag: getattr(args, flag)
        for flag in SPEC_FLAGS
        if flag not in ("pool", "gpus", "nodes", "gpus_per_node") and getattr(args, flag) is not None
    }
    compute = {k: getattr(args, k) for k in ("pool", "gpus", "nodes", "gpus_per_node") if getattr(args, k) is not None}
    if compute:
        arguments["compute"] = compute
    if args.name:
        arguments["name"] = args.name
    return arguments


def spec_from_manifest(path: Path):
    """The validated spec and the metadata of a FineTuneRun manifest; SpecError names file and line."""
    from kubetune.api import API_VERSION, KIND
    from kubetune.api.errors import SpecError, SpecProblem
    from kubetune.api.manifest import load_manifest
    from kubetune.api.spec import FineTuneRunSpec

    document, lines = load_manifest(path)
    problems = [
        SpecProblem(field, f"must be {expected}", document.get(field), str(path), lines.get(field))
        for field, expected in (("apiVersion", API_VERSION), ("kind", KIND))
        if document.get(field) != expected
    ]
    if not isinstance(document.get("spec"), dict):
        problems.append(SpecProblem("spec", "is required: the run's model, trainDataPath and registerTo", None, str(path), lines.get("spec")))
    if problems:
        raise SpecError(problems)
    try:
        spec = FineTuneRunSpec.parse(document["spec"])
    except SpecError as error:
        raise error.with_location(str(path), lines) from None
    return spec, document.get("metadata") or {}
