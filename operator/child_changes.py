"""Which watch events of a run's Jobs and pods can change what the operator decides.

A reconcile sees a Job or a pod only through its view (observe.job_view, observe.pod_view). Most updates of
these objects leave the view as it was: a Job's `active`, `ready` and `terminating` counts, a pod's IPs and
container start times, the scheduler marking again a pod it still cannot place. Such an event cannot change a
decision, so it costs no reconcile; at 1,000 waiting runs these were nearly all of the operator's idle work.
The views are the one definition of what matters: whatever a decision reads is in them.

The kopf indexes of Jobs and pods still see every event (they are separate handlers), so the next reconcile
reads the objects as they are now.
"""

import threading
from typing import Any

from kubetune.operator.observe import job_view, pod_view


class ChildChanges:
    """The last view seen of each Job and pod (by uid); `changed` says whether an event changed it."""

    def __init__(self) -> None:
        self._views: dict[str, Any] = {}
        self._lock = threading.Lock()

    def job_changed(self, event_type: str | None, body: dict[str, Any]) -> bool:
        # Without its pods and Events: those reach the run through their own events and its next reconcile.
        return self._changed(event_type, body, job_view(body, []))

    def pod_changed(self, event_type: str | None, body: dict[str, Any]) -> bool:
        return self._changed(event_type, body, pod_view(body))

    def _changed(self, event_type: str | None, body: dict[str, Any], view: Any) -> bool:
        uid = (body.get("metadata") or {}).get("uid", "")
        with self._lock:
            if event_type == "DELETED":
                self._views.pop(uid, None)
                return True
            previous = self._views.get(uid)
            self._views[uid] = view
        return previous != view

    def __len__(self) -> int:
        return len(self._views)
