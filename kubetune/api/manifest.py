"""Reading a FineTuneRun manifest with the line of every field, so errors can point at the file and line."""

from pathlib import Path
from typing import Any

import yaml

from kubetune.api.errors import SpecError, SpecProblem


def load_manifest(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The manifest's single YAML document and {dotted.field: 1-based line} for each key and list item
    (e.g. "spec.trainingDuration", "spec.evalPrompts.0"). Unreadable or malformed YAML raises SpecError."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError([SpecProblem("manifest", f"cannot be read: {error.strerror or error}", file=str(path))]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError([SpecProblem("manifest", f"is not valid YAML: {error.problem or error}", None, str(path), line)]) from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise SpecError([SpecProblem("manifest", "must be one YAML mapping (a FineTuneRun object)", None, str(path), 1)])
    return document, field_lines(node)


def field_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            field = f"{prefix}.{key.value}" if prefix else str(key.value)
            lines[field] = key.start_mark.line + 1
            lines.update(field_lines(value, field))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            field = f"{prefix}.{index}"
            lines[field] = item.start_mark.line + 1
            lines.update(field_lines(item, field))
    return lines
