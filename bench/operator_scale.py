"""How the real operator keeps up with a busy cluster: N FineTuneRuns created at R per second.

    CLUSTER_DIR=/tmp/kt-cluster-scale PYTHONSAFEPATH=1 .venv/bin/python bench/operator_scale.py --runs 200 --rate 20

The test control plane is started the way the tests start it (tests/helpers/cluster.py ensure_cluster, with
CLUSTER_DIR), the CRD applied, and the real `kubetune operator` process runs as the tests run it
(tests/helpers/operator_fixtures.py OperatorProcess) on a fresh namespace, with the example operator
configuration and its production reconcile intervals. Each run is examples/multinode.yaml under another name:
a validation Job first (its pod stays Running on the kwok nodes), so after the load every run is an active,
idle Validating run. With --training, each run skips validation and asks for one a10g GPU: its first Job is its
training Job, created after the ServiceAccount, Role, RoleBinding and report ConfigMap its pods need, and after
the load every run is Queued or Running.

Measured, all from receive times of watches started before the first create (never creationTimestamps):
- create -> first child: from the create call returning to the first watch event of a Job of that run;
- create -> first phase: to the first watch event of the run with a status.phase;
- time until all have a phase, counted from the first create; the rate the runs were created and phased at;
- the operator's CPU seconds (utime+stime of /proc/PID/stat) during the load (first create until every run has
  a phase and a child) and in the --idle-seconds after it, also per 10 s slice of it (the Job controller and the
  scheduler are still creating and placing pods then: the operator follows real changes of its runs' pods);
- then, once the cluster is quiet (no event of the runs' Jobs and pods for --quiet-seconds), the same again:
  the operator's cost of 1,000 idle runs, with nothing left to react to; its peak RSS (VmHWM of
  /proc/PID/status);
- the operator's reconciles (the kubetune_reconcile_duration_seconds count of its metrics endpoint).

The last lines are the ratios to issue 17's targets (p99 under 2 s, keeping up, idle CPU under 0.05 of a core
with the idle runs, RSS under 300 MB): a ratio at or under 1 meets the target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import cluster  # noqa: E402  (the tests' own helpers: the same cluster, the same operator process)
from helpers.operator_driver import example_run  # noqa: E402
from helpers.operator_factories import ALLOW_EVERY_TARGET  # noqa: E402
from helpers.operator_fixtures import OperatorProcess  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes import watch  # noqa: E402

from kubetune.api import GROUP, PLURAL, VERSION  # noqa: E402
from kubetune.operator import names  # noqa: E402

TARGET_P99_S = 2.0
TARGET_IDLE_CORES = 0.05
TARGET_RSS_MB = 300.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reconciles(metrics_url: str) -> int | None:
    try:
        text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    except OSError:
        return None
    counts = [float(l.split()[-1]) for l in text.splitlines() if l.startswith("kubetune_reconcile_duration_seconds_count")]
    return int(sum(counts)) if counts else None


class FirstSeen:
    """Receive time of the first watch event per run that passes `check`, from a watch started before any create."""

    def __init__(self, list_call, key, check, **kwargs):
        self.times: dict[str, float] = {}
        self._stop = threading.Event()
        self._list, self._key, self._check, self._kwargs = list_call, key, check, kwargs
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def _loop(self) -> None:
        version = self._list(**self._kwargs, _preload_content=False)
        version = json.loads(version.data)["metadata"]["resourceVersion"]
        self._ready.set()
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(self._list, resource_version=version, timeout_seconds=30, **self._kwargs):
                    at = time.monotonic()
                    obj = event["object"]
                    obj = obj if isinstance(obj, dict) else obj.to_dict()
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or meta.get("resource_version") or version
                    key = self._key(obj)
                    if key and key not in self.times and self._check(obj):
                        self.times[key] = at
                    if self._stop.is_set():
                        break
            except Exception as error:  # a watch that expired: start again from the last version seen
                if "410" in str(error):
                    return
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


class LastEvent:
    """Receive time of the latest watch event of the runs' Jobs and pods, and how many there were."""

    def __init__(self, list_calls, **kwargs):
        self.at, self.count = time.monotonic(), 0
        self._stop = threading.Event()
        for list_call in list_calls:
            threading.Thread(target=self._loop, args=(list_call, kwargs), daemon=True).start()

    def _loop(self, list_call, kwargs) -> None:
        def listed_version() -> str:
            return json.loads(list_call(**kwargs, _preload_content=False).data)["metadata"]["resourceVersion"]

        version = listed_version()
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(list_call, resource_version=version, timeout_seconds=30, **kwargs):
                    if event["type"] == "ERROR":  # 410 Gone: the version expired; list again
                        version = listed_version()
                        break
                    self.at, self.count = time.monotonic(), self.count + 1
                    version = event["object"]["metadata"]["resourceVersion"]  # a dict: the list call is a lambda
                    if self._stop.is_set():
                        return
            except Exception:  # a dropped connection: watch again from the last version seen
                time.sleep(0.2)

    def wait_quiet(self, seconds: float, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if time.monotonic() - self.at >= seconds:
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        self._stop.set()


def cpu_window(pid: int, seconds: float) -> tuple[float, list[float]]:
    """The process's CPU seconds over `seconds`, and per 10 s slice of them."""
    count = max(1, round(seconds / 10))
    slices, before = [], cpu_seconds(pid)
    for _ in range(count):
        time.sleep(seconds / count)
        slices.append(cpu_seconds(pid) - before)
        before += slices[-1]
    return sum(slices), slices


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def operator_config(folder: Path) -> Path:
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    config["mlflow"]["trackingUri"] = "http://127.0.0.1:9"  # never reached: the runs stay Validating
    config["access"] = ALLOW_EVERY_TARGET
    path = folder / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_ready(process: OperatorProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(process.liveness_url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the operator did not become live:\n{process.logs()[-3000:]}")


def wait_for_earlier_namespaces(api, timeout: float = 600) -> None:
    """An earlier run's namespace being deleted (thousands of objects to collect) loads the API server: wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [n.metadata.name for n in k8s.CoreV1Api(api).list_namespace().items if n.metadata.name.startswith("kt-bench-")]
        if not left:
            return
        print(f"waiting for earlier namespaces to be deleted: {', '.join(left)}", file=sys.stderr)
        time.sleep(10)


def clean_up(api, namespace: str) -> None:
    """With the operator stopped: drop its finalizer from the runs, then delete the namespace."""
    custom = k8s.CustomObjectsApi(api)
    for run in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        try:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, run["metadata"]["name"], {"metadata": {"finalizers": None}}
            )
        except k8s.ApiException:
            pass
    k8s.CoreV1Api(api).delete_namespace(namespace, propagation_policy="Background")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="creates per second")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="the quiet minute after the load")
    parser.add_argument("--quiet-seconds", type=float, default=15.0, help="no Job or pod event this long: quiet")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting for phases (or quiet) after this")
    parser.add_argument("--keep", action="store_true", help="leave the namespace and its runs")
    parser.add_argument(
        "--training", action="store_true",
        help="runs without the validation step, on one a10g GPU: each run's first Job is its training Job, created "
        "after everything its pods need (the children a run costs)",
    )
    args = parser.parse_args()

    kubeconfig = cluster.ensure_cluster()
    cluster.kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/finetuneruns.kubetune.io")
    api = cluster.api_client(kubeconfig)
    wait_for_earlier_namespaces(api)
    namespace = f"kt-bench-{uuid.uuid4().hex[:6]}"
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    folder = Path(tempfile.mkdtemp(prefix="operator-scale-"))
    process = OperatorProcess(kubeconfig, operator_config(folder), namespace, folder)
    process.start()
    try:
        wait_ready(process)
        pid = process.process.pid
        custom, batch = k8s.CustomObjectsApi(api), k8s.BatchV1Api(api)
        phased = FirstSeen(
            lambda **kw: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw),
            key=lambda o: o["metadata"]["name"],
            check=lambda o: bool((o.get("status") or {}).get("phase")),
        )
        children = FirstSeen(
            lambda **kw: batch.list_namespaced_job(namespace, **kw),
            key=lambda o: ((o["metadata"].get("labels") or {}).get(names.RUN_LABEL)),
            check=lambda o: True,
            label_selector=f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY}",
        )
        core = k8s.CoreV1Api(api)
        child_events = LastEvent(
            [lambda **kw: batch.list_namespaced_job(namespace, **kw), lambda **kw: core.list_namespaced_pod(namespace, **kw)],
            label_selector=f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY}",
        )
        time.sleep(1)
        created: dict[str, float] = {}
        shape = {"validateInputs": False, "compute": {"pool": "a10g", "gpus": 1}} if args.training else {}
        manifests = [example_run(f"scale-{i:05d}", **shape) for i in range(args.runs)]

        def create(i: int) -> None:
            manifest = manifests[i]
            manifest["metadata"]["namespace"] = namespace
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
            created[manifest["metadata"]["name"]] = time.monotonic()

        cpu_start, start = cpu_seconds(pid), time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            futures = []
            for i in range(args.runs):
                delay = start + i / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(create, i))
            for future in futures:
                future.result()
        last_create = max(created.values())
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and (len(phased.times) < args.runs or len(children.times) < args.runs):
            time.sleep(0.2)
        loaded = time.monotonic()
        cpu_load = cpu_seconds(pid) - cpu_start
        reconciles_load = reconciles(process.metrics_url)
        cpu_idle, slices = cpu_window(pid, args.idle_seconds)  # per 10 s: how the tail of the load decays
        reconciles_idle = reconciles(process.metrics_url)
        quiet = child_events.wait_quiet(args.quiet_seconds, args.timeout)
        settled_after = time.monotonic() - loaded
        events_before, reconciles_before_quiet = child_events.count, reconciles(process.metrics_url)
        cpu_quiet, quiet_slices = cpu_window(pid, args.idle_seconds)
        quiet_events = child_events.count - events_before
        reconciles_quiet = reconciles(process.metrics_url)
        rss = peak_rss_mb(pid)
        phased.stop(), children.stop(), child_events.stop()
    finally:
        process.stop()
        if "namespace" in locals() and not args.keep:
            clean_up(api, namespace)
    to_child = [children.times[n] - t for n, t in created.items() if n in children.times]
    to_phase = [phased.times[n] - t for n, t in created.items() if n in phased.times]
    all_phased = max(phased.times.values()) - start if len(phased.times) == args.runs else float("inf")
    offered = args.runs / (last_create - start + 1 / args.rate)
    kept = args.runs / all_phased
    figures = {
        "runs": args.runs,
        "rate": args.rate,
        "created_per_s": round(offered, 2),
        "with_child": len(to_child),
        "with_phase": len(to_phase),
        "child_p50_s": round(statistics.median(to_child), 3) if to_child else None,
        "child_p99_s": round(percentile(to_child, 99), 3) if to_child else None,
        "child_max_s": round(max(to_child), 3) if to_child else None,
        "phase_p50_s": round(statistics.median(to_phase), 3) if to_phase else None,
        "phase_p99_s": round(percentile(to_phase, 99), 3) if to_phase else None,
        "all_phased_after_s": round(all_phased, 2),
        "last_phase_after_last_create_s": round(max(phased.times.values()) - last_create, 2) if phased.times else None,
        "phased_per_s": round(kept, 2),
        "load_s": round(loaded - start, 1),
        "cpu_load_s": round(cpu_load, 1),
        "cpu_load_cores": round(cpu_load / (loaded - start), 3),
        "idle_s": args.idle_seconds,
        "cpu_idle_s": round(cpu_idle, 2),
        "idle_cores": round(cpu_idle / args.idle_seconds, 4),
        "idle_cores_per_slice": [round(c / (args.idle_seconds / len(slices)), 3) for c in slices],
        "peak_rss_mb": round(rss, 1),
        "reconciles_load": reconciles_load,
        "reconciles_per_run": round(reconciles_load / args.runs, 2) if reconciles_load is not None else None,
        "reconciles_idle": None if None in (reconciles_idle, reconciles_load) else reconciles_idle - reconciles_load,
        "quiet": quiet,
        "quiet_after_load_s": round(settled_after, 1),
        "child_events_when_quiet": quiet_events,
        "cpu_quiet_s": round(cpu_quiet, 2),
        "quiet_idle_cores": round(cpu_quiet / args.idle_seconds, 4),
        "quiet_idle_cores_per_slice": [round(c / (args.idle_seconds / len(quiet_slices)), 3) for c in quiet_slices],
        "reconciles_quiet": None if None in (reconciles_quiet, reconciles_before_quiet) else reconciles_quiet - reconciles_before_quiet,
    }
    print(json.dumps(figures))
    for key, value in figures.items():
        print(f"{key:32} {value}")
    p99 = figures["child_p99_s"]
    print(f"create->first child p99 / {TARGET_P99_S} s target: {p99 / TARGET_P99_S if p99 is not None else float('inf'):.2f}")
    print(f"offered / phased rate (keeping up: 1.00): {offered / kept if kept else float('inf'):.2f}")
    print(f"idle cores, once quiet / {TARGET_IDLE_CORES} target: {figures['quiet_idle_cores'] / TARGET_IDLE_CORES:.2f}"
          f" (the minute right after the load: {figures['idle_cores'] / TARGET_IDLE_CORES:.2f})")
    print(f"peak RSS / {TARGET_RSS_MB:g} MB target: {rss / TARGET_RSS_MB:.2f}")


if __name__ == "__main__":
    main()
