{{/* Names, labels and the small computed values the templates share. */}}

{{- define "syncjob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "syncjob-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "syncjob-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "syncjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncjob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "syncjob-operator.labels" -}}
helm.sh/chart: {{ include "syncjob-operator.chart" . }}
{{ include "syncjob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: syncjob-operator
{{- end -}}

{{- define "syncjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "syncjob-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "syncjob-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "syncjob-operator.peeringName" -}}
{{- default (include "syncjob-operator.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* The Secret the operator reads provider defaults from, or "" for none. */}}
{{- define "syncjob-operator.providerDefaultsSecret" -}}
{{- if .Values.providerDefaults.existingSecret -}}
{{- .Values.providerDefaults.existingSecret -}}
{{- else if .Values.providerDefaults.env -}}
{{- printf "%s-provider-defaults" (include "syncjob-operator.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* key=value,... sorted by key, for --selector. */}}
{{- define "syncjob-operator.selectorArg" -}}
{{- $pairs := list -}}
{{- range $key := keys .Values.selector | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $.Values.selector $key)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
RBAC rules on the namespaced resources the operator touches (see docs/helm.md, "RBAC"):
  syncjobs          get/list/watch: kopf's watch; patch: finalizer syncjob.dev/finalizer and
                    kopf's progress/diff-base annotations (prefix syncjob.dev).
  syncjobs/status   get/patch: status merge-patches (kopf and the operator's own writes).
  secrets           get: credentialsSecretRef / tokenSecretRef of a SyncJob, by name;
                    list/watch: kopf's watch of the Secrets labelled syncjob.dev/secret-in-use;
                    patch: add/remove that finalizer and label (nothing else: the admission
                    policy in secret-protection.yaml refuses any other change by the operator).
  events            create: kopf posts v1 Events (it never patches or lists them).
*/}}
{{- define "syncjob-operator.namespacedRules" -}}
- apiGroups: [syncjob.dev]
  resources: [syncjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [syncjob.dev]
  resources: [syncjobs/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* The operator's user name, as the API server sees its ServiceAccount token. */}}
{{- define "syncjob-operator.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "syncjob-operator.serviceAccountName" .) -}}
{{- end -}}

{{/*
The Secret-protection admission policy and its binding: cluster-scoped, so the name carries the
release namespace as well (two releases of the same name in two namespaces are two operators).
Neither part contains a dot, so the name is unambiguous; a DNS subdomain, up to 253 characters.
*/}}
{{- define "syncjob-operator.secretPolicyName" -}}
{{- printf "%s-secret-protection.%s" (include "syncjob-operator.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* kopf peering keep-alives: watch the peering object, merge-patch our entry in it. */}}
{{- define "syncjob-operator.peeringRule" -}}
- apiGroups: [kopf.dev]
  resources: [{{ . }}]
  verbs: [get, list, watch, patch]
{{- end -}}

{{- define "syncjob-operator.validate" -}}
{{- if and .Values.providerDefaults.existingSecret .Values.providerDefaults.env -}}
{{- fail "providerDefaults: set either env or existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor scrapes that Service" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (and .Values.peering.enabled (eq (toString .Values.peering.priority) "seniority"))) -}}
{{- fail "replicaCount > 1 needs peering.enabled=true and peering.priority=seniority: replicas of equal priority all pause, and standalone ones would all act" -}}
{{- end -}}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) -}}
{{- fail "metrics.port and health.port must differ" -}}
{{- end -}}
{{- end -}}
