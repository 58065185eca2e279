{{/* Names and labels shared by every object of the release. */}}

{{- define "kubetune.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubetune.serviceAccountName" -}}
{{- default (include "kubetune.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubetune.labels" -}}
{{ include "kubetune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Cluster-wide mode when no namespaces are listed. */}}
{{- define "kubetune.clusterWide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
The operator's configuration: values.config plus the watched namespaces, so the
file and the --namespace flags come from the same value.
*/}}
{{- define "kubetune.operatorConfig" -}}
{{- range $field, $pool := dict "defaults.pool" .Values.config.defaults.pool "defaults.validationPool" .Values.config.defaults.validationPool -}}
{{- if and $pool (not (hasKey $.Values.config.pools $pool)) -}}
{{- fail (printf "config.%s %q is not one of the configured pools (config.pools: %s)" $field $pool (keys $.Values.config.pools | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- $config := deepCopy .Values.config -}}
{{- $_ := set $config "namespaces" (.Values.watchNamespaces | default list) -}}
{{- toYaml $config -}}
{{- end -}}
