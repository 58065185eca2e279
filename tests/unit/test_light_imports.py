"""What starting a command imports: `kubetune --help`, the shared API and `python -m kubetune.trainer --help`
load none of the heavy libraries a run or a cluster command needs (torch, transformers, mlflow, the data
readers, the Kubernetes clients). Each check runs in a fresh interpreter and reads its sys.modules."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "mlflow", "datasets", "deltalake", "pyarrow", "pandas", "kubernetes", "kopf")

PROBE = """
import json, pkgutil, importlib, runpy, sys
{body}
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
print(json.dumps(heavy))
"""

CASES = {
    "kubetune --help": "from kubetune.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "every module of kubetune.api": (
        "import kubetune.api\n"
        "for module in pkgutil.iter_modules(kubetune.api.__path__):\n"
        "    importlib.import_module('kubetune.api.' + module.name)"
    ),
    "python -m kubetune.trainer --help": (
        "sys.argv = ['kubetune.trainer', '--help']\n"
        "try:\n    runpy.run_module('kubetune.trainer', run_name='__main__')\nexcept SystemExit:\n    pass"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_starting_imports_no_heavy_library(case):
    code = PROBE.format(body=CASES[case], heavy=HEAVY)
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [], f"{case} imported heavy modules"
