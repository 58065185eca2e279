"""What an identity may do, as the API server answers `kubectl auth can-i --list`, and the same for declared
RBAC rules: the tests compare the two (issue 10: RBAC exactly what the code calls)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from helpers.cluster import kubectl

# RESOURCES  [NON-RESOURCE URLS]  [RESOURCE NAMES]  [VERBS]; a URL row has no resource.
_ROW = re.compile(r"^(\S*)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$")

Permission = tuple[str, str, str]  # (resource.group[/subresource], resource name or "", verb)


def granted(kubeconfig: str, namespace: str, user: str) -> set[Permission]:
    """Every permission `user` holds in `namespace` on resources (URL rules are left out)."""
    table = kubectl(kubeconfig, "auth", "can-i", "--list", "-n", namespace, f"--as={user}")
    permissions = set()
    for line in table.splitlines()[1:]:
        row = _ROW.match(line)
        if row is None or not row.group(1):
            continue
        resource, names, verbs = row.group(1), row.group(3).split() or [""], row.group(4).split()
        permissions |= {(resource, name, verb) for name in names for verb in verbs}
    return permissions


def declared(rules: Iterable[Mapping]) -> set[Permission]:
    """RBAC rules (manifest form) as kubectl names them: resource.group, then any subresource."""

    def named(resource: str, group: str) -> str:
        base, slash, sub = resource.partition("/")
        return f"{base}.{group}{slash}{sub}" if group else resource

    return {
        (named(resource, group), name, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames") or [""]
        for verb in rule["verbs"]
    }


def beyond_every_service_account(kubeconfig: str, namespace: str, user: str) -> set[Permission]:
    """What `user` may do in `namespace` that a bare ServiceAccount there (no bindings of its own) may not."""
    import uuid

    bare = f"kt-bare-{uuid.uuid4().hex[:6]}"
    kubectl(kubeconfig, "create", "serviceaccount", bare, "-n", namespace)
    try:
        baseline = granted(kubeconfig, namespace, f"system:serviceaccount:{namespace}:{bare}")
        return granted(kubeconfig, namespace, user) - baseline
    finally:
        kubectl(kubeconfig, "delete", "serviceaccount", bare, "-n", namespace)
