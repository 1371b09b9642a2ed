{{/* Names: at most 63 characters (DNS labels). */}}
{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: video-analytics
app.kubernetes.io/part-of: vigil
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vigil.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) }}
{{- end }}

{{- define "vigil.claimName" -}}
{{- default (printf "%s-models" (include "vigil.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
Whether the chart makes up an API key: no key given, no existing Secret, and the API not
explicitly left open. The key is random, kept in the chart's Secret, and kept across
upgrades (looked up from the Secret in the cluster).
*/}}
{{- define "vigil.generatesApiKey" -}}
{{- $api := (.Values.config | default dict).api | default dict }}
{{- if not (or .Values.secrets.existingSecret .Values.secrets.apiKeys $api.allow_insecure) }}true{{- end }}
{{- end }}

{{/* The API keys the chart's Secret holds, as a JSON list (given, or made up once). */}}
{{- define "vigil.apiKeysJson" -}}
{{- if .Values.secrets.apiKeys }}
{{- toJson .Values.secrets.apiKeys }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "vigil.fullname" .) }}
{{- $key := .Values.secrets.keys.apiKeys }}
{{- if and $existing (hasKey ($existing.data | default dict) $key) }}
{{- index $existing.data $key | b64dec }}
{{- else }}
{{- toJson (list (randAlphaNum 40)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret the VIGIL_* secret variables come from, or "" when there is none. */}}
{{- define "vigil.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if or .Values.secrets.apiKeys .Values.secrets.kafkaSaslUsername .Values.secrets.kafkaSaslPassword (include "vigil.generatesApiKey" .) }}
{{- include "vigil.fullname" . }}
{{- end }}
{{- end }}

{{/* Fixed paths inside the pod. */}}
{{- define "vigil.configDir" -}}/etc/vigil{{- end }}
{{- define "vigil.stateDir" -}}/var/lib/vigil{{- end }}
{{- define "vigil.modelDir" -}}/models{{- end }}
{{- define "vigil.apiPort" -}}8080{{- end }}

{{/*
vigil.yaml: the user's settings with the ones the pod layout fixes on top. The chart owns
these keys, so setting them in .Values.config is an error (see vigil.validate) rather than a
silent override.
*/}}
{{- define "vigil.settings" -}}
{{- $owned := dict
  "api" (dict "host" "0.0.0.0" "port" (include "vigil.apiPort" . | int))
  "triton" (dict "url" "localhost:8001" "model_repository" (include "vigil.modelDir" .))
  "data_dir" (printf "%s/data" (include "vigil.stateDir" .))
  "run_dir" (printf "%s/run" (include "vigil.stateDir" .))
  "cache_dir" (printf "%s/cache" (include "vigil.stateDir" .))
}}
{{- if .Values.ota.enabled }}
{{- $_ := set $owned "model" (dict "ota_override_file" (printf "%s/%s" (include "vigil.configDir" .) .Values.ota.fileName)) }}
{{- end }}
{{- mergeOverwrite (deepCopy .Values.config) $owned | toYaml }}
{{- end }}

{{/* Refuse values Vigil would refuse (or that would leak a secret), with what to do. */}}
{{- define "vigil.validate" -}}
{{- $config := .Values.config }}
{{- $api := $config.api | default dict }}
{{- $triton := $config.triton | default dict }}
{{- $model := $config.model | default dict }}
{{- $security := ($config.kafka | default dict).security | default dict }}
{{- range $key := list "host" "port" }}
{{- if hasKey $api $key }}
{{- fail (printf "config.api.%s is set by the chart (the pod listens on 0.0.0.0:%s); remove it (service.port sets the Service's port)" $key (include "vigil.apiPort" $)) }}
{{- end }}
{{- end }}
{{- range $key := list "url" "model_repository" }}
{{- if hasKey $triton $key }}
{{- fail (printf "config.triton.%s is set by the chart (Triton runs as a sidecar at localhost:8001 and reads /models); remove it" $key) }}
{{- end }}
{{- end }}
{{- range $key := list "data_dir" "run_dir" "cache_dir" }}
{{- if hasKey $config $key }}
{{- fail (printf "config.%s is set by the chart (a writable volume under /var/lib/vigil); remove it" $key) }}
{{- end }}
{{- end }}
{{- if hasKey $model "ota_override_file" }}
{{- fail "config.model.ota_override_file is set by the chart: use ota.enabled and ota.override" }}
{{- end }}
{{- if hasKey $api "api_keys" }}
{{- fail "config.api.api_keys would put keys in a ConfigMap: use secrets.apiKeys or secrets.existingSecret" }}
{{- end }}
{{- range $key := list "sasl_password" "key_password" "sasl_username" }}
{{- if hasKey $security $key }}
{{- fail (printf "config.kafka.security.%s would put a credential in a ConfigMap: use secrets.kafkaSaslUsername / secrets.kafkaSaslPassword or secrets.existingSecret" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled $api.protect_reads }}
{{- fail "serviceMonitor.enabled with config.api.protect_reads: /metrics then needs an X-API-Key header, which a ServiceMonitor cannot send; turn one of them off" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- if and .Values.ota.enabled (not .Values.ota.override) }}
{{- fail "ota.enabled needs ota.override (the override file's text)" }}
{{- end }}
{{- $cluster := $config.cluster | default dict }}
{{- range $key := list "worker_id" "advertised_url" }}
{{- if hasKey $cluster $key }}
{{- fail (printf "config.cluster.%s is set by the chart (the pod's name and address); remove it" $key) }}
{{- end }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not $cluster.enabled) }}
{{- fail "replicaCount > 1 needs config.cluster.enabled (and config.kafka.bootstrap_servers): the pods then share the streams through Kafka (docs/scale-out.md); without it each pod would keep its own" }}
{{- end }}
{{- if and $cluster.enabled (not ($config.kafka | default dict).bootstrap_servers) }}
{{- fail "config.cluster.enabled needs config.kafka.bootstrap_servers" }}
{{- end }}
{{- end }}

{{/* HTTPS probes when Vigil's API speaks TLS. */}}
{{- define "vigil.apiScheme" -}}
{{- $tls := (.Values.config.api | default dict).tls | default dict }}
{{- if $tls.cert_file }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* A probe's timing from values: (dict "p" .Values.probes.x.y). */}}
{{- define "vigil.probeTiming" -}}
periodSeconds: {{ .p.periodSeconds }}
failureThreshold: {{ .p.failureThreshold }}
timeoutSeconds: {{ .p.timeoutSeconds }}
{{- end }}

{{- define "vigil.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}
