"""Start-up of a local run: seconds from `kubetune run FILE --local` to the trainer's first step.

The quickstart manifest (its tiny Llama, 48 chats, context 128, one epoch) in a fresh state folder with a
local SQLite MLflow store, validation on, as a user runs it. The time to the first step is when the
trainer's progress report (progress.json, polled every 20 ms) first says TRAINING, the stage it reports
just before its first step; the run then finishes (export, registration) and its total time is printed too.
`trainer_started_s` is when the CLI printed STARTED: what came before it is the CLI's own start-up and
its validation of the data, what comes after it the trainer process's start-up.

    PYTHONSAFEPATH=1 .venv/bin/python bench/local_startup.py --repeat 3
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]


def quickstart_copy(folder: Path) -> Path:
    """The tests' quickstart project (tests/helpers/data.py, loaded by path: PYTHONSAFEPATH keeps tests/ off
    sys.path), without eval prompts: generation is not start-up."""
    spec = importlib.util.spec_from_file_location("test_data_helpers", REPO_ROOT / "tests/helpers/data.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    return helpers.small_quickstart(folder, evalPrompts=None)


def one_run() -> dict:
    with tempfile.TemporaryDirectory(prefix="kt-startup-") as tmp:
        folder = Path(tmp)
        manifest = quickstart_copy(folder / "project")
        state = folder / "state"
        progress = state / "runs" / "quickstart" / "progress.json"
        env = {**os.environ, "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1", "HOME": str(folder)}
        env.pop("MLFLOW_TRACKING_URI", None)
        kubetune = str(Path(sys.executable).with_name("kubetune"))
        started = time.perf_counter()
        process = subprocess.Popen(
            [kubetune, "run", str(manifest), "--local", "--state-dir", str(state), "--no-progress-bar"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )
        first_step, output_lines, started_event = None, [], {}

        def read_output() -> None:
            for line in process.stdout:
                output_lines.append(line.decode(errors="replace"))
                if "STARTED" in output_lines[-1] and "at" not in started_event:
                    started_event["at"] = time.perf_counter() - started

        reader = threading.Thread(target=read_output, daemon=True)
        reader.start()
        while process.poll() is None:
            if first_step is None and _stage(progress) in ("TRAINING", "TRAIN_FINISHED"):
                first_step = time.perf_counter() - started
            time.sleep(0.02)
        total = time.perf_counter() - started
        reader.join()
        output = "".join(output_lines)
        if process.returncode != 0:
            log = (state / "runs" / "quickstart" / "trainer.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"the run failed:\n{output}\n{log}")
        return {
            "trainer_started_s": round(started_event.get("at", float("nan")), 2),
            "first_step_s": round(first_step, 2), "total_s": round(total, 2),
        }


def _stage(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("stage")
    except (OSError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        runs.append(one_run())
        print(json.dumps(runs[-1]), flush=True)
    print(json.dumps({
        "runs": len(runs),
        "median_trainer_started_s": statistics.median(r["trainer_started_s"] for r in runs),
        "median_first_step_s": statistics.median(r["first_step_s"] for r in runs),
        "median_total_s": statistics.median(r["total_s"] for r in runs),
    }))


if __name__ == "__main__":
    main()
