"""Whether the cluster has Kueue: API discovery of the kueue.x-k8s.io group, cached.

Asked only for a run whose Job waits suspended (the one state where a missing Kueue matters), and at most once
per interval for the whole operator, not once per reconcile: installing or removing Kueue is rare, and a
Warning that arrives a few minutes late costs nothing.
"""

import logging
import threading
import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

KUEUE_GROUP = "kueue.x-k8s.io"
log = logging.getLogger(__name__)


def served_groups(api: ApiClient) -> set[str]:
    """The API groups the API server serves (GET /apis)."""
    return {group.name for group in client.ApisApi(api).get_api_versions().groups or []}


class KueueDiscovery:
    def __init__(self, interval_s: float, groups: Callable[[ApiClient], set[str]] = served_groups, clock=time.monotonic):
        self.interval_s, self._groups, self._clock = interval_s, groups, clock
        self._lock = threading.Lock()
        self._installed: bool | None = None
        self._checked_at: float | None = None

    def installed(self, api: ApiClient) -> bool | None:
        """True or False from a look at most interval_s old; None when the API server never answered (then no
        Warning is raised on a guess). A failed look keeps the last answer and is tried again next time."""
        with self._lock:
            now = self._clock()
            if self._checked_at is not None and now - self._checked_at < self.interval_s:
                return self._installed
            try:
                installed = KUEUE_GROUP in self._groups(api)
            except (ApiException, HTTPError, OSError) as error:
                log.info("could not look for Kueue's API group %s: %s", KUEUE_GROUP, error)
                return self._installed
            if installed != self._installed:
                log.info("Kueue (API group %s) is %s", KUEUE_GROUP, "served" if installed else "not served")
            self._installed, self._checked_at = installed, now
            return installed
