{{/*
The operator's permissions, exactly those declared in operator/rbac.py
(tests/chart/test_rbac.py fails on any difference), so the chart grants nothing
the operator does not use. Each rule's comment is its reason there.
*/}}

{{/* Needed cluster-wide whatever namespaces are watched (rbac.CLUSTER_RULES). */}}
{{- define "kubetune.rules.cluster" -}}
# kopf: resource discovery
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
# kopf: follow namespaces in cluster-wide mode
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# kopf: cluster-wide peering
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end -}}

{{/* Needed in each watched namespace: a Role there, or the ClusterRole in cluster-wide mode (rbac.NAMESPACED_RULES). */}}
{{- define "kubetune.rules.namespaced" -}}
# watch runs; kopf adds/removes its finalizer
- apiGroups: ["kubetune.io"]
  resources: ["finetuneruns"]
  verbs: ["get", "list", "watch", "patch"]
# write run status
- apiGroups: ["kubetune.io"]
  resources: ["finetuneruns/status"]
  verbs: ["get", "patch"]
# children's ownerReferences with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)
- apiGroups: ["kubetune.io"]
  resources: ["finetuneruns/finalizers"]
  verbs: ["update"]
# kopf: namespaced peering
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
# validation and training Jobs
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# scheduling and exit state of the run's pods
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# the headless Service for torchrun rendezvous
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create"]
# the trainer's configuration; its report ConfigMap, read and watched for new reports
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
# the trainer's ServiceAccount
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create"]
# the checkpoint claim when checkpoints.createClaim
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["create"]
# the trainer's Role and RoleBinding (patch of its own run's report ConfigMap only)
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["create"]
# an Event for every run transition (kopf's own posting is off); a Job's FailedCreate Events (refused pods)
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
# why Kueue holds a queued Job: its Workload's conditions
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["list"]
{{- end -}}
