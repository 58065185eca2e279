"""The chart's RBAC is exactly what the operator declares in operator/rbac.py: nothing more, nothing less.

That the declaration is sufficient is proven by test_install.py, which completes a
run with the operator holding only these permissions.
"""

from __future__ import annotations

import pytest

from helpers.helm import VALUES_DIR, find, one
from kubetune.operator import rbac

FULLNAME = "kt-kubetune"


def as_set(rules: list[dict]) -> set[tuple]:
    """Rules as comparable tuples, one per (group, resource): ordering and grouping do not grant anything."""
    return {
        (group, resource, tuple(sorted(rule["verbs"])))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def declared(*rule_sets) -> set[tuple]:
    return as_set([r.to_manifest() for rules in rule_sets for r in rules])


def test_cluster_wide_mode_grants_exactly_the_declared_rules(render):
    objects = render()
    assert not find(objects, "Role") and not find(objects, "RoleBinding")
    cluster_role = one(objects, "ClusterRole", FULLNAME)
    assert as_set(cluster_role["rules"]) == declared(rbac.CLUSTER_RULES, rbac.NAMESPACED_RULES)


def test_namespaced_mode_grants_the_namespaced_rules_only_in_watched_namespaces(render):
    objects = render(VALUES_DIR / "namespaced.yaml")
    assert as_set(one(objects, "ClusterRole", FULLNAME)["rules"]) == declared(rbac.CLUSTER_RULES)
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert as_set(role["rules"]) == declared(rbac.NAMESPACED_RULES)


@pytest.mark.parametrize("values", [[], [VALUES_DIR / "namespaced.yaml"]], ids=["cluster-wide", "namespaced"])
def test_no_wildcards_and_no_secrets(render, values):
    for role in find(render(*values), "ClusterRole") + find(render(*values), "Role"):
        for group, resource, verbs in as_set(role["rules"]):
            assert "*" not in (group, resource, *verbs)
            assert resource != "secrets", "secrets are passed to pods by reference; the operator never reads them"
            assert "escalate" not in verbs and "bind" not in verbs and "impersonate" not in verbs
