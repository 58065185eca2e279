"""status.usage: GPU-seconds, queue wait, time to first step and cost, from times the status records. Pure.

Nothing here is counted in memory: GPU-seconds grow from `usage.countedUntil` (or the moment the current
attempt's pods all ran, the Scheduled condition's lastTransitionTime) to now, so any number of operators
and restarts between two status writes count every second exactly once. The handlers call `account` only
when a status write happens anyway (a transition, a trainer report): a usage that grew by itself would
make every reconcile write, and every write trigger another reconcile.
"""

from datetime import datetime

from kubetune.api.status import FineTuneRunStatus, Usage
from kubetune.operator import conditions as c
from kubetune.operator.config import OperatorConfig


def with_shape(status: FineTuneRunStatus, pool: str, gpus: int) -> FineTuneRunStatus:
    """The pool and GPU count of the attempt whose pods run (set by reconcile when the run is Running)."""
    usage = (status.usage or Usage()).model_copy(update={"pool": pool, "gpus": gpus})
    return status.model_copy(update={"usage": usage})


def pods_running_since(status: FineTuneRunStatus) -> datetime | None:
    """When every training pod of the current attempt ran, while they hold their GPUs: None once training
    succeeded, and between attempts (Scheduled is False then)."""
    scheduled = c.find(status.conditions, c.SCHEDULED)
    if scheduled is None or not c.is_true(status.conditions, c.SCHEDULED) or scheduled.reason != c.PODS_RUNNING:
        return None
    if c.is_true(status.conditions, c.TRAINING_SUCCEEDED):
        return None
    return scheduled.last_transition_time


def account(
    before: FineTuneRunStatus,
    after: FineTuneRunStatus,
    created: datetime | None,
    config: OperatorConfig,
    now: datetime,
) -> FineTuneRunStatus:
    """`after` with its usage up to `now`. The pods that ran at `before` (the status as stored) ran until now,
    when this reconcile saw what became of them."""
    stored = before.usage or Usage()
    usage = after.usage or Usage()
    gpus = stored.gpus if stored.gpus is not None else usage.gpus
    gpu_seconds = stored.gpu_seconds
    since = pods_running_since(before)
    if since is not None and gpus:
        start = max(since, stored.counted_until or since)
        gpu_seconds += max(0, int((now - start).total_seconds())) * gpus
    update = {"gpu_seconds": gpu_seconds, "counted_until": now}
    if after.start_time is not None and created is not None:
        update["queue_wait_seconds"] = max(0, int((after.start_time - created).total_seconds()))
    if usage.time_to_first_step_seconds is None and after.start_time is not None and _first_step(before, after):
        update["time_to_first_step_seconds"] = max(0, int((now - after.start_time).total_seconds()))
    price = _price(config, usage.pool)
    update["estimated_cost"] = round(gpu_seconds / 3600 * price, 4) if price is not None else None
    return after.model_copy(update={"usage": usage.model_copy(update=update)})


def _first_step(before: FineTuneRunStatus, after: FineTuneRunStatus) -> bool:
    """This reconcile saw the first training step: none before (a run that was past it when an older operator
    ran gets no time to first step rather than a wrong one)."""
    step = lambda s: (s.progress.step if s.progress else None) or 0  # noqa: E731
    return step(before) == 0 and step(after) > 0


def _price(config: OperatorConfig, pool: str | None) -> float | None:
    node_pool = config.pools.get(pool) if pool is not None else None
    return node_pool.price_per_gpu_hour if node_pool is not None else None
