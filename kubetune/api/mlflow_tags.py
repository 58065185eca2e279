"""MLflow tag names that tie MLflow runs and model versions to the FineTuneRun that made them.

The trainer tags the MLflow run it creates; the registration step (operator or local mode)
tags the model version; both find their earlier work again by these tags after a restart.
"""

RUN_TAG = "kubetune.run"  # <namespace>/<name>
RUN_UID_TAG = "kubetune.run_uid"  # the FineTuneRun's metadata.uid (local mode: a uuid kept in run.json)


def run_tags(namespace: str, name: str, uid: str) -> dict[str, str]:
    return {RUN_TAG: f"{namespace}/{name}", RUN_UID_TAG: uid}


def quoted(value: str) -> str:
    """A value inside single quotes of an MLflow search filter."""
    return value.replace("'", "\\'")


def run_filter(tags: dict[str, str]) -> str:
    """An MLflow search_runs filter matching every tag of `tags`."""
    return " and ".join(f"tags.`{key}` = '{quoted(value)}'" for key, value in tags.items())
