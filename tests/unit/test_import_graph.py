"""The imports between kubetune's modules: no cycles, and the operator, the trainer and the shared package
stay apart. Read from the source with `ast`; nothing here imports the modules it checks.

Modules. The folders of [tool.setuptools] package-dir in pyproject.toml map to packages (kubetune/ is
`kubetune`, operator/ is `kubetune.operator`, trainer/ is `kubetune.trainer`); a file belongs to the entry
with the deepest folder holding it. A package is the module of its `__init__.py` (`kubetune.trainer.data`).

Imports. Every import statement counts, wherever it is: at module level, inside a function or class, under
`if TYPE_CHECKING:` or `try:`. Dynamic imports (importlib.import_module) are not seen. Each imported name
becomes an edge to one module:
  * `import a.b.c` is an edge to `a.b.c` (a module, or the `__init__` of package `a.b.c`);
  * `from P import X` is an edge to the submodule `P.X` when that module exists, and to `P` (its `__init__`
    when P is a package) when X is a name defined there: `from kubetune.trainer.data import formatting`
    depends on formatting only, `from kubetune.trainer.data import Example` on the package's `__init__`;
  * relative imports are resolved against the importing module's package first (`from .formatting import X`
    in trainer/data/__init__.py is `kubetune.trainer.data.formatting`);
  * a dotted name of the kubetune namespace that is not a module is cut back to the longest one that is;
    anything outside the namespace (torch, kopf, os) is a leaf, kept by its full dotted name.
  * a module importing itself is no edge.

Cycles. Importing `a.b.c` also runs the `__init__` of `a` and `a.b`, but those ancestor edges are left out
of the cycle check: by the time a package's `__init__` imports its submodules the package is already in
sys.modules, so "a package `__init__` re-exports its submodules, which import each other by full path"
(trainer/data) is no cycle. A submodule that takes a *name* from its own package's `__init__`
(`from kubetune.trainer.data import Example` in packing.py) is an edge to that `__init__`, which imports
packing back: a real cycle (it fails as soon as the names are defined in the other order), and reported.
Every import that lies on a cycle is reported in at least one cycle (the shortest cycle through it).

Layers. The layer checks follow imports transitively, and there the ancestor packages count: loading a
module loads its parent package's `__init__`. A chain is reported from each module of the layer to the
first forbidden module it reaches, through modules outside the layer (a module of the layer further down
the chain is reported on its own), so each offending import shows up once per module that needs it.
The one exception is SHARED_MAY_IMPORT_OPERATOR: kubetune.cli.operator, the `kubetune operator` command,
starts the operator and so imports it (inside the command function); it is exempt only as a source, so a
shared module that imported kubetune.cli.operator would still be reported.
"""

import ast
import tomllib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "kubetune"
OPERATOR = "kubetune.operator"
TRAINER = "kubetune.trainer"
API = "kubetune.api"
# The `kubetune operator` console command starts the operator: it is where the shared CLI hands over to
# kubetune.operator (lazily, inside the command), so it alone may import it.
SHARED_MAY_IMPORT_OPERATOR = {"kubetune.cli.operator"}


@dataclass
class ImportGraph:
    modules: dict[str, Path]  # module name -> source file
    edges: dict[str, dict[str, int]] = field(default_factory=dict)  # module -> {imported module: first line}

    def internal(self, name: str) -> bool:
        return name in self.modules

    def where(self, module: str, target: str) -> str:
        return f"{module}:{self.edges[module][target]}"


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return {package: root / folder for package, folder in config["tool"]["setuptools"]["package-dir"].items()}


def discover(dirs: dict[str, Path]) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package, folder in dirs.items():
        for path in sorted(folder.rglob("*.py")):
            owner = max((p for p, d in dirs.items() if path.is_relative_to(d)), key=lambda p: len(dirs[p].parts))
            if owner != package:
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def in_namespace(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def parent(name: str) -> str | None:
    return name.rpartition(".")[0] or None


def _resolve(dotted: str, modules: dict[str, Path]) -> str:
    if not in_namespace(dotted, NAMESPACE):
        return dotted
    name = dotted
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterable[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, by the rules of the docstring."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _resolve(alias.name, modules), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else parent(module) or ""
                for _ in range(node.level - 1):
                    package = parent(package) or ""
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in modules else _resolve(base, modules)), node.lineno


def build_graph(root: Path = ROOT) -> ImportGraph:
    graph = ImportGraph(discover(package_dirs(root)))
    for module, path in graph.modules.items():
        targets = graph.edges.setdefault(module, {})
        for target, line in imports_of(module, path, graph.modules):
            if target != module:
                targets.setdefault(target, line)
    return graph


def strongly_connected(graph: ImportGraph) -> list[set[str]]:
    """Tarjan's components of the internal edges, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(t for t in graph.edges[start] if graph.internal(t))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(t for t in graph.edges[successor] if graph.internal(t)))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def _shortest_path(graph: ImportGraph, start: str, goal: str, allowed: set[str]) -> list[str]:
    previous = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while path[-1] != start:
                path.append(previous[path[-1]])
            return path[::-1]
        for successor in sorted(graph.edges[node]):
            if successor in allowed and successor not in previous:
                previous[successor] = node
                queue.append(successor)
    raise AssertionError(f"no path {start} -> {goal}")


def find_cycles(graph: ImportGraph) -> list[list[str]]:
    """For each import inside a strongly connected component, the shortest cycle through it (deduplicated)."""
    cycles = {}
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        for module in sorted(component):
            for target in sorted(t for t in graph.edges[module] if t in component):
                cycle = [module, *_shortest_path(graph, target, module, component)[:-1]]
                first = cycle.index(min(cycle))
                cycle = cycle[first:] + cycle[:first]
                cycles[tuple(cycle)] = cycle
    return [cycles[key] for key in sorted(cycles)]


def format_cycle(graph: ImportGraph, cycle: list[str]) -> str:
    closed = [*cycle, cycle[0]]
    return " -> ".join(graph.where(a, b) for a, b in zip(closed, closed[1:])) + f" -> {cycle[0]}"


def _loads(graph: ImportGraph, module: str) -> list[str]:
    """What loading `module` loads first: its imports, and its parent package's __init__."""
    up = parent(module)
    return sorted(graph.edges.get(module, {})) + ([up] if up and graph.internal(up) else [])


def layer_violations(graph: ImportGraph, sources: set[str], forbidden: Iterable[str]) -> list[str]:
    """Chains from each source module to the first forbidden module it loads, through non-source modules."""
    forbidden = tuple(forbidden)

    def is_forbidden(name: str) -> bool:
        return any(in_namespace(name, f) for f in forbidden)

    found = []
    for source in sorted(sources):
        previous = {source: source}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if node != source and (is_forbidden(node) or node in sources or not graph.internal(node)):
                continue
            for successor in _loads(graph, node):
                if successor in previous:
                    continue
                previous[successor] = node
                queue.append(successor)
                if is_forbidden(successor):
                    chain = [successor]
                    while chain[-1] != source:
                        chain.append(previous[chain[-1]])
                    chain.reverse()
                    steps = [
                        graph.where(a, b) if b in graph.edges[a] else f"{a} (loads its package)"
                        for a, b in zip(chain, chain[1:])
                    ]
                    found.append(" -> ".join(steps + [successor]))
    return found


def _layer(graph: ImportGraph, prefix: str) -> set[str]:
    return {m for m in graph.modules if in_namespace(m, prefix)}


def _shared(graph: ImportGraph) -> set[str]:
    return {m for m in graph.modules if not in_namespace(m, OPERATOR) and not in_namespace(m, TRAINER)}


def _report(title: str, problems: list[str]) -> str:
    return f"{title} ({len(problems)}):\n  " + "\n  ".join(problems)


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph()


def test_the_graph_sees_every_package_and_their_imports(graph):
    for package in package_dirs():
        assert package in graph.modules, package
    for module in ("kubetune.sdk.api", "kubetune.operator.reconcile", "kubetune.trainer.data.packing"):
        assert module in graph.modules, module
    assert "kubetune.sdk.run" in graph.edges["kubetune.foundation_model"]
    assert "kubetune.trainer.data.formatting" in graph.edges["kubetune.trainer.data"]  # `from .formatting import`


def test_no_import_cycles(graph):
    cycles = find_cycles(graph)
    problems = [format_cycle(graph, c) for c in cycles]
    assert not cycles, _report("import cycles (module:line -> imported module)", problems)


def test_operator_never_imports_the_trainer_torch_or_transformers(graph):
    problems = layer_violations(graph, _layer(graph, OPERATOR), [TRAINER, "torch", "transformers"])
    assert not problems, _report("kubetune.operator loads the trainer's side", problems)


def test_trainer_never_imports_the_operator(graph):
    problems = layer_violations(graph, _layer(graph, TRAINER), [OPERATOR])
    assert not problems, _report("kubetune.trainer loads the operator", problems)


def test_shared_package_never_imports_the_operator(graph):
    problems = layer_violations(graph, _shared(graph) - SHARED_MAY_IMPORT_OPERATOR, [OPERATOR])
    assert not problems, _report("the shared kubetune package loads the operator", problems)


def test_api_contract_imports_neither_side(graph):
    problems = layer_violations(graph, _layer(graph, API), [TRAINER, "torch", "transformers", "kopf", "kubernetes"])
    assert not problems, _report("kubetune.api (the contract) loads one side's code", problems)


# The rules themselves, on a small project written to tmp_path.


def _project(tmp_path: Path, files: dict[str, str]) -> ImportGraph:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "kubetune" = "kubetune", "kubetune.trainer" = "trainer" }\n'
    )
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return build_graph(tmp_path)


REEXPORTING_PACKAGE = {
    "kubetune/__init__.py": "",
    "trainer/__init__.py": "",
    "trainer/data/__init__.py": "from .formatting import tokenize\nfrom .packing import pack\nimport torch.nn\n",
    "trainer/data/formatting.py": "def tokenize(): ...\n",
    "trainer/data/packing.py": "from kubetune.trainer.data.formatting import tokenize\n"
    "def pack():\n    from kubetune.trainer.data import formatting\n",
}


def test_a_package_that_reexports_its_submodules_is_no_cycle(tmp_path):
    graph = _project(tmp_path, REEXPORTING_PACKAGE)
    assert graph.edges["kubetune.trainer.data"] == {
        "kubetune.trainer.data.formatting": 1, "kubetune.trainer.data.packing": 2, "torch.nn": 3
    }
    assert graph.edges["kubetune.trainer.data.packing"] == {"kubetune.trainer.data.formatting": 1}
    assert find_cycles(graph) == []


def test_a_name_taken_from_the_own_package_init_is_a_cycle(tmp_path):
    files = dict(REEXPORTING_PACKAGE)
    files["trainer/data/packing.py"] += "def later():\n    from kubetune.trainer.data import tokenize\n"
    graph = _project(tmp_path, files)
    assert find_cycles(graph) == [["kubetune.trainer.data", "kubetune.trainer.data.packing"]]
    assert format_cycle(graph, find_cycles(graph)[0]) == (
        "kubetune.trainer.data:2 -> kubetune.trainer.data.packing:5 -> kubetune.trainer.data"
    )


def test_lazy_imports_between_modules_are_a_cycle(tmp_path):
    files = {
        "kubetune/__init__.py": "",
        "kubetune/sdk/__init__.py": "",
        "kubetune/sdk/run.py": "def refresh():\n    from kubetune.sdk import api\n",
        "kubetune/sdk/filters.py": "from ..sdk.run import refresh\n",
        "kubetune/sdk/api.py": "import kubetune.sdk.filters\n",
    }
    cycles = find_cycles(_project(tmp_path, files))
    assert cycles == [["kubetune.sdk.api", "kubetune.sdk.filters", "kubetune.sdk.run"]]


def test_layers_follow_imports_through_other_modules_and_packages(tmp_path):
    files = {
        "kubetune/__init__.py": "",
        "kubetune/api/__init__.py": "from kubetune.api.helpers import x\n",
        "kubetune/api/helpers.py": "def x():\n    import torch\n",
        "kubetune/api/spec.py": "",
        "kubetune/operator/__init__.py": "",
        "kubetune/operator/reconcile.py": "import os\n\nfrom kubetune.api.spec import Spec\n",
        "kubetune/operator/handlers.py": "from . import reconcile\n",
        "trainer/__init__.py": "",
    }
    graph = _project(tmp_path, files)
    assert layer_violations(graph, _layer(graph, OPERATOR), ["torch"]) == [
        "kubetune.operator.reconcile:3 -> kubetune.api.spec (loads its package) -> kubetune.api:1"
        " -> kubetune.api.helpers:2 -> torch"
    ]
