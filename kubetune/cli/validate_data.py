"""`kubetune validate-data`: check a dataset before training, as the data-validation notebook does.

Format checks name the file, line and rule of every problem (exit 1). With a
tokenizer (`--tokenizer PATH`, or `--model` naming a local model folder) it also
reports token counts per example, truncation at the context length, the
estimated tokens per epoch and the packing efficiency.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from kubetune.api.data_paths import PVC_MOUNT_ROOT
from kubetune.api.spec import TaskType

EXIT_INVALID_DATA = 1
EXIT_USAGE = 2


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
    parser.add_argument("--model", help="a supported model name or a local model folder (its tokenizer is used)")
    parser.add_argument(
        "--context-length", type=int, help="truncation and packing length (default: the model's, capped at 8192)"
    )
    parser.add_argument("--tokenizer", type=Path, help="a local tokenizer or model folder")
    parser.add_argument(
        "--pvc-mount-root", type=Path, default=Path(PVC_MOUNT_ROOT), help="where pvc://CLAIM is mounted as ROOT/CLAIM"
    )
    parser.add_argument("--dataset-root", type=Path, help="an offline Hugging Face dataset mirror: ROOT/org/name")
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
    """What the arguments resolve to: tokenizer folder, context length and the system-role rule."""

    tokenizer_path: Path | None
    context_length: int
    accepts_system_role: bool
    notes: list[str]


def _plan(args: argparse.Namespace) -> _Plan:
    from kubetune.api.supported_models import DEFAULT_CONTEXT_CAP, lookup

    info = lookup(args.model) if args.model else None
    model_folder = Path(args.model) if args.model and Path(args.model).is_dir() else None
    if args.model and info is None and model_folder is None:
        raise UsageError(f"--model {args.model!r} is neither a supported model nor a local model folder")
    if args.tokenizer is not None and not args.tokenizer.is_dir():
        raise UsageError(f"--tokenizer {args.tokenizer}: no such folder")
    notes = []
    tokenizer_path = args.tokenizer or model_folder
    if tokenizer_path is None:
        reason = f"no local copy of {args.model}" if info else "no --tokenizer or local --model given"
        notes.append(f"{reason}: format checks only (pass --tokenizer PATH for token counts and packing)")
    max_context = info.max_context_length if info else _folder_max_context(model_folder)
    context_length = args.context_length or min(DEFAULT_CONTEXT_CAP, max_context or DEFAULT_CONTEXT_CAP)
    if context_length <= 0:
        raise UsageError("--context-length must be positive")
    if max_context and context_length > max_context:
        raise UsageError(f"--context-length {context_length} is larger than the model's maximum {max_context}")
    return _Plan(tokenizer_path, context_length, info.accepts_system_role if info else True, notes)


def _folder_max_context(folder: Path | None) -> int | None:
    import json

    config = folder / "config.json" if folder else None
    if config is None or not config.is_file():
        return None
    return json.loads(config.read_text()).get("max_position_embeddings")


def _validate(args: argparse.Namespace, plan: _Plan) -> str:
    import datasets

    from kubetune.trainer.data import DataConfig, load_and_validate, tokenizer_accepts_system_role

    datasets.disable_progress_bars()  # a report, not a download log
    tokenizer = _load_tokenizer(plan.tokenizer_path) if plan.tokenizer_path else None
    accepts_system = plan.accepts_system_role and (tokenizer is None or tokenizer_accepts_system_role(tokenizer))
    config = DataConfig(
        path=_as_local_when_present(args.path),
        task_type=args.task_type,
        context_length=plan.context_length,
        pvc_mount_root=args.pvc_mount_root,
        dataset_root=args.dataset_root,
        accepts_system_role=accepts_system,
    )
    examples = load_and_validate(config)
    lines = [f"OK: {len(examples)} valid {args.task_type.value} examples in {args.path}", *plan.notes]
    if tokenizer is not None:
        lines += _token_report(examples, tokenizer, config)
    return "\n".join(lines)


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
