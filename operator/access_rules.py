"""Which models a namespace may register and which MLflow experiments it may log to (issue 10).

The operator registers and creates experiments with its own MLflow credentials for every namespace, so it
checks each run's targets against the operator configuration's `access` section before it creates anything
(kubetune.operator.reconcile.decide), and the name again when it registers (kubetune.operator.registration).

Patterns, matched segment by segment, ignoring case (as Unity Catalog does):

- registerTo: `<catalog>.<schema>` (any model in that schema) or `<catalog>.<schema>.<model>`;
- experimentPaths: a path split at `/`, where a segment `**` matches any number of segments (none included);
- within a segment, `*` matches any characters, `?` one, `[abc]` one of a set (fnmatch); no wildcard ever
  crosses a `.` or `/`, and a whole segment must match: `*.team_a` allows schema team_a, never team_ab;
- placeholders: `{namespace}` is the run's namespace (in registerTo with `-` made `_`, as identifiers have no
  `-`: team-a becomes team_a), `{experimentRoot}` the configuration's defaults.experimentRoot.

The default lets a namespace register only into a schema named after itself (in any catalog) and log only
under `<experimentRoot>/<namespace>/`, where the operator puts a run's experiment when the spec names none.
The configuration section (`access` of kubetune.operator.config) is defined here, next to its rule.
"""

import glob
import re
from collections.abc import Sequence
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.identifiers import DNS_LABEL_PATTERN
from kubetune.api.spec import FineTuneRunSpec

NAMESPACE = "{namespace}"
EXPERIMENT_ROOT = "{experimentRoot}"
DEFAULT_REGISTER_TO = ("*." + NAMESPACE,)
DEFAULT_EXPERIMENT_PATHS = (f"{EXPERIMENT_ROOT}/{NAMESPACE}/**",)
ANY_SEGMENTS = "**"
SEMANTICS = "`*` matches within one segment, `**` any number of /-segments"

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_REGISTER_TO_SEGMENT = re.compile(r"^([A-Za-z0-9_*?!\[\]-]|\{namespace\})+$")
_UNNORMALISED = (".", "..", "")


def schema_name(namespace: str) -> str:
    """A namespace as a catalog identifier: DNS labels have no `_`, so team-a -> team_a is one-to-one."""
    return namespace.replace("-", "_")


def register_to_pattern_problem(pattern: str) -> str | None:
    """What is wrong with a registerTo pattern of the configuration, or None."""
    segments = pattern.split(".")
    if len(segments) not in (2, 3) or not all(_REGISTER_TO_SEGMENT.match(s) for s in segments):
        return (
            f"{pattern!r} must be <catalog>.<schema> or <catalog>.<schema>.<model>, each part made of letters, "
            f"digits, _, the wildcards * ? [ ] and the placeholder {NAMESPACE}"
        )
    return None


def experiment_path_pattern_problem(pattern: str) -> str | None:
    """What is wrong with an experimentPaths pattern of the configuration, or None."""
    unknown = [p for p in _PLACEHOLDER.findall(pattern) if p not in (NAMESPACE, EXPERIMENT_ROOT)]
    if not pattern or unknown:
        return f"{pattern!r} must be a non-empty path whose only placeholders are {NAMESPACE} and {EXPERIMENT_ROOT}"
    if any(ANY_SEGMENTS in s and s != ANY_SEGMENTS for s in pattern.split("/")):
        return f"{pattern!r}: ** must be a whole path segment (/**/ or a trailing /**)"
    return None


def expand_register_to(patterns: Sequence[str], namespace: str) -> tuple[str, ...]:
    return tuple(p.replace(NAMESPACE, schema_name(namespace)) for p in patterns)


def expand_experiment_paths(patterns: Sequence[str], namespace: str, experiment_root: str) -> tuple[str, ...]:
    # The root is the operator's own text, not a pattern: its wildcards (if any) match only themselves.
    root = glob.escape(experiment_root.rstrip("/"))
    return tuple(p.replace(EXPERIMENT_ROOT, root).replace(NAMESPACE, namespace) for p in patterns)


def register_to_allowed(name: str, patterns: Sequence[str]) -> bool:
    """`name` (catalog.schema.model) matches one of the expanded patterns."""
    parts = name.lower().split(".")
    for pattern in patterns:
        segments = pattern.lower().split(".")
        if len(segments) <= len(parts) and _match(segments, parts[: len(segments)]):
            return True
    return False


def experiment_path_allowed(path: str, patterns: Sequence[str]) -> bool:
    """`path` matches one of the expanded patterns; a path with `.`, `..` or empty segments never does."""
    parts = path.lower().split("/")
    if any(p in _UNNORMALISED for p in parts[1:]):  # a leading "" is the root of an absolute path
        return False
    return any(_match(pattern.lower().split("/"), parts) for pattern in patterns)


def _match(segments: list[str], parts: list[str]) -> bool:
    if not segments:
        return not parts
    head, rest = segments[0], segments[1:]
    if head == ANY_SEGMENTS:
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match(rest, parts[1:])


class _Section(BaseModel):  # as kubetune.operator.config's sections (which imports this module)
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _register_to_patterns(value: list[str] | None) -> list[str] | None:
    return _refuse_problems([register_to_pattern_problem(p) for p in value or ()], value)


def _experiment_path_patterns(value: list[str] | None) -> list[str] | None:
    return _refuse_problems([experiment_path_pattern_problem(p) for p in value or ()], value)


def _refuse_problems(problems: list[str | None], value: list[str] | None) -> list[str] | None:
    if any(problems):
        raise ValueError("; ".join(p for p in problems if p))
    return value


class AccessRule(_Section):
    """Where runs may register models and log experiments (patterns: kubetune.operator.access_rules)."""

    register_to: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REGISTER_TO),
        description="<catalog>.<schema> or <catalog>.<schema>.<model> patterns a run's registerTo must match; "
        "{namespace} is the run's namespace with - made _. Default: a schema named after the namespace.",
    )
    experiment_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXPERIMENT_PATHS),
        description="Path patterns a run's MLflow experiment must match (** any number of segments); {namespace}, "
        "{experimentRoot} are placeholders. Default: under <experimentRoot>/<namespace>/.",
    )

    _register_to = field_validator("register_to")(_register_to_patterns)
    _experiment_paths = field_validator("experiment_paths")(_experiment_path_patterns)


class NamespaceAccess(_Section):
    """One namespace's own rule; a field left out takes access.default's."""

    register_to: list[str] | None = None
    experiment_paths: list[str] | None = None

    _register_to = field_validator("register_to")(_register_to_patterns)
    _experiment_paths = field_validator("experiment_paths")(_experiment_path_patterns)


class Access(_Section):
    """Which registerTo targets and MLflow experiments each namespace may use: the operator registers with its
    own MLflow credentials, so a namespace must not reach another's models or experiments."""

    default: AccessRule = Field(default_factory=AccessRule, description="For namespaces not listed in `namespaces`.")
    namespaces: dict[str, NamespaceAccess] = Field(default_factory=dict, description="Rules by namespace name.")

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, value: dict[str, NamespaceAccess]) -> dict[str, NamespaceAccess]:
        bad = [name for name in value if not re.fullmatch(DNS_LABEL_PATTERN, name)]
        if bad:
            raise ValueError(f"{bad} are not namespace names (DNS labels)")
        return value

    def register_to_for(self, namespace: str) -> tuple[list[str], str]:
        """The namespace's registerTo patterns and the configuration field they come from."""
        own = self.namespaces.get(namespace)
        if own is not None and own.register_to is not None:
            return own.register_to, f"access.namespaces.{namespace}.registerTo"
        return self.default.register_to, "access.default.registerTo"

    def experiment_paths_for(self, namespace: str) -> tuple[list[str], str]:
        own = self.namespaces.get(namespace)
        if own is not None and own.experiment_paths is not None:
            return own.experiment_paths, f"access.namespaces.{namespace}.experimentPaths"
        return self.default.experiment_paths, "access.default.experimentPaths"


def check_access(spec: FineTuneRunSpec, namespace: str, run_name: str, access: Access, experiment_root: str) -> None:
    """SpecError naming spec.registerTo and/or spec.experimentPath when the run's namespace may not use them."""
    problems = []
    register_to, where = access.register_to_for(namespace)
    allowed = expand_register_to(register_to, namespace)
    if not register_to_allowed(spec.registered_model_name(run_name), allowed):
        shown = ", ".join(allowed) or "nothing"
        rule = f"namespace {namespace} may register models only to {shown} (operator configuration {where})"
        problems.append(SpecProblem("spec.registerTo", rule, spec.register_to))
    experiments, where = access.experiment_paths_for(namespace)
    allowed = expand_experiment_paths(experiments, namespace, experiment_root)
    path = spec.resolved_experiment_path(namespace, run_name, experiment_root)
    if not experiment_path_allowed(path, allowed):
        rule = (
            f"namespace {namespace} may log only to MLflow experiments matching {', '.join(allowed) or 'nothing'} "
            f"({SEMANTICS}; no '.', '..' or empty segments; operator configuration {where})"
        )
        if spec.experiment_path is None:
            rule = f"{rule}; the default experiment {path} is outside it: set spec.experimentPath"
        problems.append(SpecProblem("spec.experimentPath", rule, spec.experiment_path))
    if problems:
        raise SpecError(problems)
