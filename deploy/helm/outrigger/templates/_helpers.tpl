{{/* Names and labels. Object names are DNS labels: cut at 63 characters. */}}
{{- define "outrigger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "outrigger.fullname" -}}
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

{{/* The name of one role's objects: (dict "root" $ "component" "gateway"). */}}
{{- define "outrigger.componentName" -}}
{{- printf "%s-%s" (include "outrigger.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What a role's pods are selected by; never changes for a release (Deployment selectors are immutable). */}}
{{- define "outrigger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outrigger.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .pool }}
outrigger.io/pool: {{ . }}
{{- end }}
{{- end -}}

{{/* Every object's labels: the selector labels plus the chart and versions. */}}
{{- define "outrigger.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "outrigger.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: outrigger
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "outrigger.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "outrigger.componentName" (dict "root" . "component" "secrets")) -}}
{{- end -}}

{{- define "outrigger.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The gateway Service's in-cluster address, the default public endpoints. */}}
{{- define "outrigger.gatewayHost" -}}
{{- printf "%s.%s.svc" (include "outrigger.componentName" (dict "root" . "component" "gateway")) .Release.Namespace -}}
{{- end -}}

{{/*
A worker pool's settings: workers.defaults, overridden key by key by the pool's own entry, two levels deep.
Sprig's merge functions are not used: they treat `false` and `0` as unset, so a pool could not turn off what
the defaults turn on. (dict "defaults" D "override" O), answered as YAML.
*/}}
{{- define "outrigger.poolSettings" -}}
{{- $merged := deepCopy .defaults -}}
{{- range $key, $value := (.override | default dict) -}}
{{- $base := get $merged $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $base) -}}
{{- range $innerKey, $innerValue := $value -}}
{{- $_ := set $base $innerKey $innerValue -}}
{{- end -}}
{{- else -}}
{{- $_ := set $merged $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $merged -}}
{{- end -}}

{{/*
The environment of every Outrigger container: the settings deploy/compose.yaml and the Dockerfile give every
service, set here rather than taken from the image so that the probes and mounts below can rely on them.
*/}}
{{- define "outrigger.env" -}}
- name: OUTRIGGER_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "outrigger.secretName" . }}
      key: {{ .Values.secrets.databaseUrlKey }}
- name: OUTRIGGER_DATA_DIR
  value: /var/lib/outrigger
- name: OUTRIGGER_METRICS_ADDR
  value: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
- name: OUTRIGGER_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: OUTRIGGER_LOG
  value: {{ .Values.config.log | quote }}
{{- with .Values.config.natsUrl }}
- name: OUTRIGGER_NATS_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.managedKvstoreUrl }}
- name: OUTRIGGER_MANAGED_KVSTORE_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.managedPubsubUrl }}
- name: OUTRIGGER_MANAGED_PUBSUB_URL
  value: {{ . | quote }}
{{- end }}
- name: OUTRIGGER_PUBLIC_HTTP_ENDPOINT
  value: {{ .Values.config.publicHttpEndpoint | default (printf "http://%s:%d" (include "outrigger.gatewayHost" .) (int .Values.gateway.service.httpPort)) | quote }}
- name: OUTRIGGER_PUBLIC_GRPC_ENDPOINT
  value: {{ .Values.config.publicGrpcEndpoint | default (printf "http://%s:%d" (include "outrigger.gatewayHost" .) (int .Values.gateway.service.grpcPort)) | quote }}
{{- range $name, $value := .Values.config.settings }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A pod template's spec for one role: (dict "root" $ "component" C "pool" P "args" [...] "ports" [...]
"readiness" {path, port} "resources" R "scheduling" {nodeSelector, tolerations, affinity} "restartPolicy" R).
Liveness and startup are `GET /metrics` on the metrics port, which every role serves once it is up (the
Dockerfile's HEALTHCHECK asks the same); readiness is the role's own answer where it has one.
*/}}
{{- define "outrigger.podSpec" -}}
{{- $root := .root -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
{{- with .restartPolicy }}
restartPolicy: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: outrigger
    image: {{ include "outrigger.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      {{- include "outrigger.env" $root | nindent 6 }}
      {{- with .extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- /* Only the long-running roles listen; the migration does not. */}}
    {{- if .readiness }}
    ports:
      {{- range .ports }}
      - name: {{ .name }}
        containerPort: {{ .port }}
        protocol: TCP
      {{- end }}
      - name: metrics
        containerPort: {{ $root.Values.metrics.port }}
        protocol: TCP
    startupProbe:
      httpGet: {path: /metrics, port: metrics}
      periodSeconds: 2
      failureThreshold: 60
    livenessProbe:
      httpGet: {path: /metrics, port: metrics}
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 3
    readinessProbe:
      httpGet: {path: {{ .readiness.path }}, port: {{ .readiness.port }}}
      periodSeconds: 5
      timeoutSeconds: 3
      failureThreshold: 2
    {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      capabilities:
        drop: [ALL]
    volumeMounts:
      - {name: data, mountPath: /var/lib/outrigger}
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: data
    emptyDir: {sizeLimit: {{ $root.Values.dataDirSizeLimit }}}
  - name: tmp
    emptyDir: {sizeLimit: 64Mi}
{{- with .scheduling }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
A Deployment with its PodDisruptionBudget and HorizontalPodAutoscaler: (dict "root" $ "component" C "pool" P
"name" N "settings" S ...podSpec's keys), S holding replicas, autoscaling and podDisruptionBudget.
*/}}
{{- define "outrigger.deployment" -}}
{{- $root := .root -}}
{{- $settings := .settings -}}
{{- $hpa := and (hasKey $settings "autoscaling") $settings.autoscaling.enabled -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "outrigger.labels" . | nindent 4 }}
spec:
  {{- if not $hpa }}
  replicas: {{ $settings.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "outrigger.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "outrigger.labels" . | nindent 8 }}
      annotations:
        # A changed Secret or setting rolls the pods (env is read only at start).
        checksum/config: {{ dict "secrets" $root.Values.secrets "config" $root.Values.config "extraEnv" $root.Values.extraEnv | toJson | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "outrigger.podSpec" . | trim | nindent 6 }}
{{- if $settings.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "outrigger.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $settings.podDisruptionBudget.maxUnavailable | toJson }}
  selector:
    matchLabels:
      {{- include "outrigger.selectorLabels" . | nindent 6 }}
{{- end }}
{{- if $hpa }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  labels:
    {{- include "outrigger.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ $settings.autoscaling.minReplicas }}
  maxReplicas: {{ $settings.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $settings.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}
