{{/* Base name of every object: fullnameOverride, else the release name (suffixed unless it has it). */}}
{{- define "tsgw.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "tsgw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tsgw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tailscale-gateway
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "tsgw.selectorLabels" -}}
app.kubernetes.io/name: tailscale-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tsgw.serviceAccountName" -}}
{{- default (include "tsgw.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Name of the Secret holding the OAuth client, or empty when none is configured. */}}
{{- define "tsgw.oauthSecretName" -}}
{{- if .Values.oauth.existingSecret -}}
{{- .Values.oauth.existingSecret -}}
{{- else if or .Values.oauth.clientId .Values.oauth.clientSecret -}}
{{- printf "%s-oauth" (include "tsgw.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The extension server's address as Envoy Gateway's extensionManager.service.fqdn.hostname. */}}
{{- define "tsgw.grpcHostname" -}}
{{- printf "%s.%s.svc.%s" .Values.grpc.service.name .Release.Namespace .Values.operator.clusterDomain -}}
{{- end -}}

{{/* Name of the leader-election Lease; fixed in the binary (src/operator/operator.ts LEASE_NAME). */}}
{{- define "tsgw.leaseName" -}}tailscale-gateway{{- end -}}

{{/* Fails rendering on contradictory values, with a message naming them. */}}
{{- define "tsgw.validate" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.operator.shutdownTimeout) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed operator.shutdownTimeout (%v): the kubelet would kill the pod before it released its Lease" .Values.terminationGracePeriodSeconds .Values.operator.shutdownTimeout) -}}
{{- end -}}
{{- if and .Values.oauth.existingSecret (or .Values.oauth.clientId .Values.oauth.clientSecret) -}}
{{- fail "set either oauth.existingSecret or oauth.clientId/oauth.clientSecret, not both" -}}
{{- end -}}
{{- if and (not .Values.oauth.existingSecret) (or .Values.oauth.clientId .Values.oauth.clientSecret) (not (and .Values.oauth.clientId .Values.oauth.clientSecret)) -}}
{{- fail "oauth.clientId and oauth.clientSecret go together" -}}
{{- end -}}
{{- if and .Values.tailnet.create (not (include "tsgw.oauthSecretName" .)) -}}
{{- fail "tailnet.create needs oauth.existingSecret or oauth.clientId and oauth.clientSecret" -}}
{{- end -}}
{{- if and (not .Values.operator.leaderElection) (gt (int .Values.replicaCount) 1) -}}
{{- fail "operator.leaderElection=false allows only replicaCount: 1 (two reconcilers would fight)" -}}
{{- end -}}
{{- if and .Values.grpc.tls.clientCA (not .Values.grpc.tls.secretName) -}}
{{- fail "grpc.tls.clientCA needs grpc.tls.secretName" -}}
{{- end -}}
{{- end -}}
