from datetime import timedelta

import pytest

from helpers.operator_factories import NOW
from kubetune.api.status import ConditionStatus
from kubetune.operator import conditions as c

LATER = NOW + timedelta(minutes=5)


def test_set_condition_adds_a_new_condition():
    [cond] = c.set_condition([], c.SCHEDULED, False, c.JOB_CREATED, "created", NOW, 3)
    assert (cond.status, cond.reason, cond.last_transition_time, cond.observed_generation) == (
        ConditionStatus.FALSE.value,
        c.JOB_CREATED,
        NOW,
        3,
    )


@pytest.mark.parametrize(
    "second_status, second_reason, moved",
    [
        (False, c.UNSCHEDULABLE, False),  # same status, new reason: the transition time stays
        (True, c.PODS_RUNNING, True),  # flipped
    ],
)
def test_last_transition_time_moves_only_when_status_flips(second_status, second_reason, moved):
    first = c.set_condition([], c.SCHEDULED, False, c.JOB_CREATED, "created", NOW)
    [second] = c.set_condition(first, c.SCHEDULED, second_status, second_reason, "x", LATER)
    assert second.reason == second_reason
    assert second.last_transition_time == (LATER if moved else NOW)


def test_set_condition_keeps_other_conditions_and_does_not_mutate():
    first = c.set_condition([], c.SPEC_VALID, True, c.SPEC_ACCEPTED, "ok", NOW)
    both = c.set_condition(first, c.SCHEDULED, False, c.JOB_CREATED, "created", NOW)
    assert [x.type for x in both] == [c.SPEC_VALID, c.SCHEDULED]
    assert len(first) == 1


@pytest.mark.parametrize(
    "before, after, expected",
    [
        ([], [(c.SPEC_VALID, True, c.SPEC_ACCEPTED, "ok")], [("Normal", c.SPEC_ACCEPTED)]),
        ([(c.SPEC_VALID, True, c.SPEC_ACCEPTED, "ok")], [(c.SPEC_VALID, True, c.SPEC_ACCEPTED, "ok")], []),
        ([(c.SCHEDULED, False, c.JOB_CREATED, "a")], [(c.SCHEDULED, False, c.UNSCHEDULABLE, "b")], [("Warning", c.UNSCHEDULABLE)]),
        ([(c.FAILED, False, c.RESTARTING, "attempt 0")], [(c.FAILED, False, c.RESTARTING, "attempt 1")], [("Warning", c.RESTARTING)]),
    ],
)
def test_transitions_are_changed_conditions(before, after, expected):
    def build(items):
        result = []
        for type_, status, reason, message in items:
            result = c.set_condition(result, type_, status, reason, message, NOW)
        return result

    assert [(t.type, t.reason) for t in c.transitions(build(before), build(after))] == expected
