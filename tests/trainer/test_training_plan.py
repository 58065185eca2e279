"""Pure parts of the trainer: duration → steps, the LR schedule, batch shapes, the sampler, checkpoint names."""

import math

import pytest

from kubetune.api.duration import TrainingDuration
from kubetune.api.checkpoints import (
    COMPLETE_MARKER,
    CheckpointNotFoundError,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    parse_checkpoint_name,
    point_latest,
    resolve_custom_weights,
)
from kubetune.api.trainer_config import TrainingOptions
from kubetune.trainer.optim import BatchShape, lr_multiplier, plan_steps, warmup_steps
from kubetune.trainer.sampler import SamplerPosition, StepSampler


@pytest.mark.parametrize(
    ("duration", "sequences", "tokens", "batch", "total", "per_epoch", "epochs"),
    [
        ("1ep", 100, 10_000, 16, 7, 7, 1),  # 100/16 → 6 full batches and a partial one
        ("3ep", 100, 10_000, 16, 21, 7, 3),
        ("5ba", 100, 10_000, 16, 5, 7, 1),
        ("10ba", 100, 10_000, 16, 10, 7, 2),
        ("20000tok", 100, 10_000, 16, 14, 7, 2),  # two epochs of tokens
        ("1tok", 100, 10_000, 16, 1, 7, 1),  # never fewer than one step
        ("2ep", 3, 300, 16, 2, 1, 2),  # fewer sequences than a batch
    ],
)
def test_plan_steps(duration, sequences, tokens, batch, total, per_epoch, epochs):
    plan = plan_steps(TrainingDuration.parse(duration), sequences, tokens, batch)
    assert (plan.total_steps, plan.steps_per_epoch, plan.total_epochs) == (total, per_epoch, epochs)


def test_plan_epoch_of_step_and_tokens_total():
    plan = plan_steps(TrainingDuration.parse("2ep"), 10, 1000, 4)
    assert [plan.epoch_of(s) for s in range(1, 7)] == [1, 1, 1, 2, 2, 2]
    assert plan.tokens_total == 2000


def test_plan_rejects_empty_data():
    with pytest.raises(ValueError, match="no sequences"):
        plan_steps(TrainingDuration.parse("1ep"), 0, 0, 4)


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    total, warmup = 20, 4
    factors = [lr_multiplier(s, total, warmup, 0.1) for s in range(total)]
    assert factors[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert factors[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[-1] > 0.1  # the last step still learns
    assert lr_multiplier(total, total, warmup, 0.1) == pytest.approx(0.1)
    middle = warmup + (total - warmup) // 2
    assert factors[middle] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.mark.parametrize(("total", "fraction", "expected"), [(100, 0.05, 5), (10, 0.05, 0), (1, 0.5, 0), (3, 0.9, 2), (100, 0, 0)])
def test_warmup_steps(total, fraction, expected):
    assert warmup_steps(total, fraction) == expected


@pytest.mark.parametrize(
    ("global_batch", "micro", "world", "sequences", "expected"),
    [
        (16, 1, 1, 100, (16, 1, 16)),  # one rank accumulates the whole batch
        (16, 2, 4, 100, (16, 2, 2)),
        (16, 4, 2, 5, (5, 3, 1)),  # data smaller than a batch: batch shrinks, micro-batch fits the rank's share
        (3, 1, 2, 100, (3, 1, 2)),  # uneven split: ranks run the same number of micro-batches
    ],
)
def test_batch_shape(global_batch, micro, world, sequences, expected):
    shape = BatchShape.fit(TrainingOptions(global_batch_size=global_batch, micro_batch_size=micro), world, sequences)
    assert (shape.global_batch_size, shape.micro_batch_size, shape.accumulation_steps) == expected


def _sampler(world: int, rank: int, sequences: int = 11, batch: int = 4, micro: int = 1) -> StepSampler:
    return StepSampler(sequences, BatchShape(batch, micro, world), rank, seed=3)


def test_two_ranks_see_exactly_the_single_rank_global_batches():
    position = SamplerPosition()
    for _ in range(7):  # across an epoch boundary (3 steps per epoch)
        single = sorted(i for mb in _sampler(1, 0).micro_batches(position) for i in mb)
        split = sorted(i for rank in (0, 1) for mb in _sampler(2, rank).micro_batches(position) for i in mb)
        assert split == single
        position = _sampler(1, 0).advance(position)


def test_every_rank_runs_the_same_number_of_micro_batches_even_when_the_last_batch_is_short():
    last = SamplerPosition(epoch=0, step_in_epoch=2)  # 11 sequences, batch 4: the third step has 3
    counts = [len(_sampler(2, rank).micro_batches(last)) for rank in (0, 1)]
    assert counts == [2, 2]
    assert [len(mb) for mb in _sampler(2, 1).micro_batches(last)] == [1, 0]


def test_epochs_cover_every_sequence_once_in_a_new_order():
    sampler = _sampler(1, 0)
    position, seen = SamplerPosition(), {0: [], 1: []}
    while position.epoch < 2:
        seen[position.epoch] += [i for mb in sampler.micro_batches(position) for i in mb]
        position = sampler.advance(position)
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(11))
    assert seen[0] != seen[1]


def test_sampler_position_round_trips():
    position = SamplerPosition(epoch=2, step_in_epoch=5)
    assert SamplerPosition.from_state_dict(position.state_dict()) == position


def test_checkpoint_names():
    assert checkpoint_name(2, 300) == "ep2-ba300"
    assert parse_checkpoint_name("ep2-ba300") == (2, 300)
    assert parse_checkpoint_name("latest") is None
    assert parse_checkpoint_name("ep2-ba300.tmp") is None


def _fake_checkpoint(run_dir, name: str, complete: bool = True):
    path = run_dir / name
    path.mkdir(parents=True)
    if complete:
        (path / COMPLETE_MARKER).write_text("")
    return path


def test_latest_points_only_at_complete_checkpoints(tmp_path):
    run_dir = tmp_path / "run" / "checkpoints"
    first = _fake_checkpoint(run_dir, "ep0-ba5")
    _fake_checkpoint(run_dir, "ep1-ba10", complete=False)  # killed while saving
    assert latest_checkpoint(run_dir) is None
    point_latest(run_dir, first.name)
    assert latest_checkpoint(run_dir) == first
    assert [p.name for p in list_checkpoints(run_dir)] == ["ep0-ba5"]
    assert not list(run_dir.glob(".*.tmp"))  # the temp file was renamed into place


def test_a_latest_naming_a_torn_checkpoint_falls_back_to_the_newest_complete_one(tmp_path):
    """Storage that does not keep the order of writes can show `latest` moved before the marker landed:
    the run resumes from its newest complete checkpoint instead of starting over."""
    run_dir = tmp_path / "run" / "checkpoints"
    first = _fake_checkpoint(run_dir, "ep0-ba5")
    torn = _fake_checkpoint(run_dir, "ep1-ba10", complete=False)
    point_latest(run_dir, torn.name)
    assert latest_checkpoint(run_dir) == first


@pytest.mark.parametrize("form", ["folder", "latest", "checkpoints", "run name"])
def test_custom_weights_path_forms(tmp_path, form):
    root = tmp_path / "ckpt"
    run_dir = root / "earlier-run" / "checkpoints"
    _fake_checkpoint(run_dir, "ep1-ba4")
    target = _fake_checkpoint(run_dir, "ep2-ba8")
    point_latest(run_dir, target.name)
    value = {
        "folder": str(target),
        "latest": str(run_dir / "latest"),
        "checkpoints": str(run_dir),
        "run name": "earlier-run",
    }[form]
    assert resolve_custom_weights(value, root, tmp_path) == target


def test_custom_weights_path_must_name_a_complete_checkpoint(tmp_path):
    incomplete = _fake_checkpoint(tmp_path / "ckpt" / "r" / "checkpoints", "ep1-ba4", complete=False)
    for value in (str(incomplete), "no-such-run", str(tmp_path / "missing")):
        with pytest.raises(CheckpointNotFoundError, match="customWeightsPath"):
            resolve_custom_weights(value, tmp_path / "ckpt", tmp_path)
