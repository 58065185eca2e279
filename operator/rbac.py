"""Every API permission the operator uses, declared once. The Helm chart's ClusterRole/Role
(charts/kubetune/templates/_rbac.tpl) is a hand-written copy that tests/chart/test_rbac.py keeps equal to this.

`CLUSTER_RULES` are needed cluster-wide whatever namespaces are watched (kopf's
discovery, peering, and namespace watching in cluster-wide mode). `NAMESPACED_RULES`
are needed in each watched namespace (a Role there, or a ClusterRole in
cluster-wide mode). Keep this in step with kube.py and the kopf settings in runner.py: a verb
nothing calls is a permission an attacker who takes the operator's token gets for free
(tests/chart/test_install.py compares what the installed ServiceAccount may do with these rules).
Creating a child is create alone: an existing child is kept as it is (kube.ensure), so no get.
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
    Rule((GROUP,), (f"{PLURAL}/status",), ("get", "patch"), "write run status"),
    Rule(
        (GROUP,),
        (f"{PLURAL}/finalizers",),
        ("update",),
        "children's ownerReferences with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)",
    ),
    Rule(("kopf.dev",), ("kopfpeerings",), ("get", "list", "watch", "patch"), "kopf: namespaced peering"),
    Rule(("batch",), ("jobs",), ("list", "watch", "create", "delete"), "validation and training Jobs"),
    Rule(("",), ("pods",), ("list", "watch"), "scheduling and exit state of the run's pods"),
    Rule(("",), ("services",), ("create",), "the headless Service for torchrun rendezvous"),
    Rule(
        ("",),
        ("configmaps",),
        ("get", "list", "watch", "create", "patch"),
        "the trainer's configuration; its report ConfigMap, read and watched for new reports",
    ),
    Rule(("",), ("serviceaccounts",), ("create",), "the trainer's ServiceAccount"),
    Rule(("",), ("persistentvolumeclaims",), ("create",), "the checkpoint claim when checkpoints.createClaim"),
    Rule(
        ("rbac.authorization.k8s.io",),
        ("roles", "rolebindings"),
        ("create",),
        "the trainer's Role and RoleBinding (patch of its own run's report ConfigMap only)",
    ),
    Rule(
        ("",),
        ("events",),
        ("create", "list"),
        "an Event for every run transition (kopf's own posting is off); a Job's FailedCreate Events (refused pods)",
    ),
    Rule(("kueue.x-k8s.io",), ("workloads",), ("list",), "why Kueue holds a queued Job: its Workload's conditions"),
)

