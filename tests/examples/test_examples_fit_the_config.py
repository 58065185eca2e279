"""Every FineTuneRun in examples/ is one the example operator configuration (examples/operator-config.yaml)
places: its pool exists there and fits, and its Kueue priority class is one that configuration allows."""

import pytest
import yaml

from helpers.cluster import REPO_ROOT
from kubetune.api import KIND
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator.builders.kueue import priority_problems
from kubetune.operator.config import OperatorConfig
from kubetune.operator.placement import resolve_placement

EXAMPLES = REPO_ROOT / "examples"
CONFIG = OperatorConfig.load(EXAMPLES / "operator-config.yaml")
RUNS = {
    f"{path.name}:{doc['metadata']['name']}": doc
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc and doc.get("kind") == KIND
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_example_configuration_places_the_run(name):
    run = RUNS[name]
    spec = FineTuneRunSpec.parse(run["spec"])
    resolve_placement(spec.compute, CONFIG, spec)  # raises naming the field for an unknown pool or a bad shape
    assert priority_problems(run["metadata"].get("labels") or {}, CONFIG) == []
