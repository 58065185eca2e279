{{/*
The operator's permissions. They must equal what the operator declares in
operator/rbac.py (tests/chart/test_rbac.py fails on any difference), so the
chart grants nothing the operator does not use.
*/}}

{{/* In every watched namespace (a Role), or everywhere (the ClusterRole). */}}
{{- define "kubetune.rules.namespaced" -}}
- apiGroups: ["kubetune.io"]
  resources: ["finetuneruns"]
  verbs: ["get", "list", "watch", "patch"]
# Status is written by the operator; it also grants each run's trainer the
# right to patch its own run's status, and RBAC lets it grant only what it holds.
- apiGroups: ["kubetune.io"]
  resources: ["finetuneruns/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "delete"]
# The checkpoint claim: created when missing, never deleted.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create"]
{{- end -}}

{{/* Peering in namespaced mode: one KopfPeering per watched namespace. */}}
{{- define "kubetune.rules.namespacedPeering" -}}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end -}}

{{/* Cluster-scoped reads kopf needs in both modes (resource discovery). */}}
{{- define "kubetune.rules.cluster" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}

{{/* Only in cluster-wide mode: namespaces come and go, peering is cluster-wide. */}}
{{- define "kubetune.rules.clusterWide" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end -}}
