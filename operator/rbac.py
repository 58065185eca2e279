"""Every API permission the operator uses, declared once. The Helm chart's ClusterRole/Role
(charts/kubetune/templates/_rbac.tpl) is a hand-written copy that tests/chart/test_rbac.py keeps equal to this.

`CLUSTER_RULES` are needed cluster-wide whatever namespaces are watched (kopf's
discovery, peering, and namespace watching in cluster-wide mode). `NAMESPACED_RULES`
are needed in each watched namespace (a Role there, or a ClusterRole in
cluster-wide mode). Keep this in step with kube.py and the kopf settings in runner.py.
"""

from dataclasses import dataclass

from kubetune.api import GROUP, PLURAL


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def to_manifest(self) -> dict[str, list[str]]:
        return {"apiGroups": list(self.api_groups), "resources": list(self.resources), "verbs": list(self.verbs)}


CLUSTER_RULES: tuple[Rule, ...] = (
    Rule(("apiextensions.k8s.io",), ("customresourcedefinitions",), ("get", "list", "watch"), "kopf: resource discovery"),
    Rule(("",), ("namespaces",), ("get", "list", "watch"), "kopf: follow namespaces in cluster-wide mode"),
    Rule(("kopf.dev",), ("clusterkopfpeerings",), ("get", "list", "watch", "patch"), "kopf: cluster-wide peering"),
)

NAMESPACED_RULES: tuple[Rule, ...] = (
    Rule((GROUP,), (PLURAL,), ("get", "list", "watch", "patch"), "watch runs; kopf adds/removes its finalizer"),
    Rule((GROUP,), (f"{PLURAL}/status",), ("get", "patch", "update"), "write run status"),
    Rule(
        (GROUP,),
        (f"{PLURAL}/finalizers",),
        ("update",),
        "children's ownerReferences with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)",
    ),
    Rule(("kopf.dev",), ("kopfpeerings",), ("get", "list", "watch", "patch"), "kopf: namespaced peering"),
    Rule(("batch",), ("jobs",), ("get", "list", "watch", "create", "delete"), "validation and training Jobs"),
    Rule(("",), ("pods",), ("get", "list", "watch"), "scheduling and exit state of the run's pods"),
    Rule(("",), ("services",), ("get", "create"), "the headless Service for torchrun rendezvous"),
    Rule(("",), ("configmaps",), ("get", "create", "patch"), "the trainer's configuration"),
    Rule(("",), ("serviceaccounts",), ("get", "create"), "the trainer's ServiceAccount"),
    Rule(("",), ("persistentvolumeclaims",), ("get", "create"), "the checkpoint claim when checkpoints.createClaim"),
    Rule(
        ("rbac.authorization.k8s.io",),
        ("roles", "rolebindings"),
        ("get", "create"),
        "the trainer's Role and RoleBinding (patch of its own run's status only)",
    ),
    Rule(("",), ("events",), ("create", "patch"), "an Event for every run transition (kopf may also post)"),
    Rule(("events.k8s.io",), ("events",), ("create", "patch"), "the same through the newer Events API"),
)

