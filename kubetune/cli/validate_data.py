"""`kubetune validate-data`: check a dataset before training, as the data-validation notebook does.

Format checks name the file, line and rule of every problem (exit 1). With a
tokenizer (`--tokenizer PATH`, or `--model` naming a local model folder) it also
reports token counts per example, truncation at the context length, the
estimated tokens per epoch and the packing efficiency.
"""

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from kubetune.api.locations import DATASET_ROOT_ENV, PVC_MOUNT_ROOT
from kubetune.api.spec import TaskType
from kubetune.cli.errors import EXIT_USAGE

EXIT_INVALID_DATA = 1


class UsageError(ValueError):
    """A wrong combination of arguments (exit 2), as opposed to bad data (exit 1)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate-data",
        help="check training data's format, token counts and packing before a run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "path", help="a trainDataPath: JSONL file or folder, .txt folder, pvc://, s3://…, org/name/split, Delta table"
    )
    parser.add_argument("--task-type", type=TaskType, default=TaskType.CHAT_COMPLETION,
                        choices=list(TaskType), metavar="{" + ",".join(t.value for t in TaskType) + "}")
    parser.add_argument(
        "--model", help="a supported model name or a model folder (a path or pvc://CLAIM/path; its tokenizer is used)"
    )
    parser.add_argument(
        "--context-length", type=int, help="truncation and packing length (default: the model's, capped at 8192)"
    )
    parser.add_argument("--tokenizer", type=Path, help="a local tokenizer or model folder")
    parser.add_argument(
        "--pvc-mount-root", type=Path, default=Path(PVC_MOUNT_ROOT), help="where pvc://CLAIM is mounted as ROOT/CLAIM"
    )
    parser.add_argument(
        "--dataset-root", type=Path, default=os.environ.get(DATASET_ROOT_ENV) or None,
        help=f"an offline Hugging Face dataset mirror: ROOT/org/name, the dataset's files or a save_to_disk folder "
        f"(default: ${DATASET_ROOT_ENV})",
    )
    parser.add_argument(
        "--databricks-locations", type=Path, metavar="FILE",
        help="Unity Catalog volumes and tables mapped to storage (YAML: volumes, tables; "
        "default: the file $KUBETUNE_DATABRICKS_LOCATIONS names)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.trainer.data import DataValidationError

    try:
        plan = _plan(args)
        report = _validate(args, plan)
    except UsageError as err:
        print(f"kubetune validate-data: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except DataValidationError as err:
        for problem in err.problems:
            print(problem)
        more = err.total - len(err.problems)
        shown = f" (first {len(err.problems)} shown, {more} more)" if more else ""
        print(f"invalid data: {err.total} problem(s){shown}")
        return EXIT_INVALID_DATA
    print(report)
    return 0


@dataclass(frozen=True)
class _Plan:
    """What the arguments resolve to: the tokenizer folder, the model folder and the notes to print."""

    tokenizer_path: Path | None
    model_folder: Path | None
    notes: list[str]


def _plan(args: argparse.Namespace) -> _Plan:
    from kubetune.trainer.data import model_folder

    folder = None
    if args.model:
        try:
            folder = model_folder(args.model, args.pvc_mount_root)
        except ValueError as err:
            raise UsageError(f"--model {args.model!r} is neither a supported model nor a local model folder: {err}") from None
        if folder is not None and not folder.is_dir():
            raise UsageError(f"--model {args.model!r}: no model folder at {folder}")
    if args.context_length is not None and args.context_length <= 0:
        raise UsageError("--context-length must be positive")
    if args.tokenizer is not None and not args.tokenizer.is_dir():
        raise UsageError(f"--tokenizer {args.tokenizer}: no such folder")
    notes = []
    tokenizer_path = args.tokenizer or folder
    if tokenizer_path is None:
        reason = f"no local copy of {args.model}" if args.model else "no --tokenizer or local --model given"
        notes.append(f"{reason}: format checks only (pass --tokenizer PATH for token counts and packing)")
    return _Plan(tokenizer_path, folder, notes)


def _validate(args: argparse.Namespace, plan: _Plan) -> str:
    import datasets

    from kubetune.api.data_rules import folder_max_context, model_max_context
    from kubetune.trainer.data import DataConfig, load_and_validate, rules_for

    datasets.disable_progress_bars()  # a report, not a download log
    tokenizer = _load_tokenizer(plan.tokenizer_path) if plan.tokenizer_path else None
    folder_max = folder_max_context(plan.model_folder)
    try:
        rules = rules_for(args.model or "", args.task_type, args.context_length, tokenizer=tokenizer, folder_max=folder_max)
    except ValueError as err:
        maximum = model_max_context(args.model or "", folder_max)
        too_long = maximum and args.context_length and args.context_length > maximum
        raise UsageError(
            f"--context-length {args.context_length} is larger than the model's maximum {maximum}" if too_long else str(err)
        ) from None
    config = DataConfig.from_rules(
        _as_local_when_present(_mapped(args)), rules, pvc_mount_root=args.pvc_mount_root, dataset_root=args.dataset_root
    )
    examples = load_and_validate(config)
    lines = [f"OK: {len(examples)} valid {args.task_type.value} examples in {args.path}", *plan.notes]
    if tokenizer is not None:
        lines += _token_report(examples, tokenizer, config)
    return "\n".join(lines)


def _mapped(args: argparse.Namespace) -> str:
    """The path to read: a Unity Catalog volume or table through the locations file; unmapped, a usage error."""
    from kubetune.api.databricks_locations import DatabricksLocations, mapped_data_path

    try:
        return mapped_data_path(args.path, DatabricksLocations.for_local_mode(args.databricks_locations))
    except ValueError as err:
        raise UsageError(str(err)) from None


def _as_local_when_present(path: str) -> str:
    # On a workstation `data/train` that exists is meant as a folder, not the dataset `data/train` on the hub.
    if not path.startswith(("/", "./", "../")) and "://" not in path and Path(path).exists():
        return f"./{path}"
    return path


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot load a tokenizer from {path}: {err}") from err


def _token_report(examples, tokenizer, config) -> list[str]:
    from kubetune.api.spec import TaskType as Task
    from kubetune.trainer.data import PackedDataset, summarize_lengths
    from kubetune.trainer.data.formatting import tokenize_examples
    from kubetune.trainer.data.pipeline import pad_token_id

    tokenized = tokenize_examples(examples, tokenizer, config.task_type)
    packed = PackedDataset.from_examples(
        tokenized, config.context_length, pad_token_id=pad_token_id(tokenizer),
        split_long=config.task_type is Task.CONTINUED_PRETRAIN,
    )
    lengths, stats = summarize_lengths(packed.example_lengths), packed.stats
    long_examples = (
        f"documents split at context length {config.context_length}: {stats.split_documents}"
        if config.task_type is Task.CONTINUED_PRETRAIN
        else f"examples truncated at context length {config.context_length}: {stats.truncated_examples}"
    )
    return [
        f"tokens per example: min {lengths.min}, mean {lengths.mean:.1f}, max {lengths.max}, p95 {lengths.p95}",
        long_examples,
        f"estimated tokens per epoch: {packed.tokens_per_epoch:,} ({stats.loss_tokens:,} with loss)",
        f"packing: {stats.examples} examples into {stats.sequences} sequences of {config.context_length} tokens, "
        f"efficiency {stats.efficiency:.1%}",
    ]
