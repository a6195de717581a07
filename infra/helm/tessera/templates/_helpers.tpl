{{/* The release's name for Tessera's objects. */}}
{{- define "tessera.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object: call with (dict "root" $ "component" "gateway"). */}}
{{- define "tessera.labels" -}}
{{ include "tessera.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* image: (dict "root" $ "image" <override or empty>) */}}
{{- define "tessera.image" -}}
{{- $image := mergeOverwrite (deepCopy .root.Values.image) (.image | default dict) -}}
{{- printf "%s:%s" $image.repository ($image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "tessera.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "tessera.fullname" .)) -}}
{{- end -}}

{{/* Globs of the models that some pool serves: everything else calls them there (REMOTE_MODELS). */}}
{{- define "tessera.remoteModels" -}}
{{- $models := list -}}
{{- range .Values.workers.pools -}}
{{- if and .enabled .models -}}{{- $models = concat $models .models -}}{{- end -}}
{{- end -}}
{{- $models | uniq | join "," -}}
{{- end -}}

{{/*
Tessera's environment: settings as values, secrets only as secretKeyRefs to the chart's Secret (or existingSecret).
(dict "root" $ "remoteModels" true|false "extra" (dict NAME value ...))
*/}}
{{- define "tessera.env" -}}
{{- $root := .root -}}
{{- $settings := dict "NODE_ENV" "production" "HOST" "0.0.0.0" "PORT" "4000" "DATA_DIR" "/data" -}}
{{- $_ := set $settings "MODELS_DIR" (ternary $root.Values.models.mountPath "/app/models" (not (empty $root.Values.models.existingClaim))) -}}
{{- if $root.Values.weaviate.url -}}
{{- $_ := set $settings "WEAVIATE_URL" $root.Values.weaviate.url -}}
{{- $_ := set $settings "WEAVIATE_GRPC_PORT" (toString $root.Values.weaviate.grpcPort) -}}
{{- end -}}
{{- $remote := include "tessera.remoteModels" $root -}}
{{- if and .remoteModels $remote -}}{{- $_ := set $settings "REMOTE_MODELS" $remote -}}{{- end -}}
{{- $settings = mergeOverwrite $settings (deepCopy ($root.Values.config | default dict)) (.extra | default dict) -}}
{{- range $name := keys $settings | sortAlpha }}
- name: {{ $name }}
  value: {{ get $settings $name | toString | quote }}
{{- end }}
{{- range $name := list "DATABASE_URL" "REDIS_URL" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef: { name: {{ include "tessera.secretName" $root }}, key: {{ $name }} }
{{- end }}
{{- range $name := list "WEAVIATE_API_KEY" "CONTENT_URL_SECRET" "METRICS_TOKEN" "MCP_SECRETS_KEY" "WEBHOOK_SECRETS_KEY" "OPENAI_API_KEY" "HF_TOKEN" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef: { name: {{ include "tessera.secretName" $root }}, key: {{ $name }}, optional: true }
{{- end }}
{{- end -}}

{{/* Volumes for /data (blobs) and the models folder. */}}
{{- define "tessera.volumes" -}}
- name: data
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (printf "%s-data" (include "tessera.fullname" .)) }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- if .Values.models.existingClaim }}
- name: models
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
{{- end }}
{{- end -}}

{{- define "tessera.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if .Values.models.existingClaim }}
- name: models
  mountPath: {{ .Values.models.mountPath }}
{{- end }}
{{- end -}}

{{/* Liveness (/live: the process turns), readiness (/ready: its dependencies answer), and a start-up allowance. */}}
{{- define "tessera.probes" -}}
startupProbe:
  httpGet: { path: /live, port: {{ . }} }
  periodSeconds: 5
  failureThreshold: 36
livenessProbe:
  httpGet: { path: /live, port: {{ . }} }
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /ready, port: {{ . }} }
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}
