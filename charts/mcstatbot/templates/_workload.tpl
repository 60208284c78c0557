{{/*
One workload component of the chart (bot, query, watcher): its ConfigMap, ServiceAccount,
Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget, from the component's values block
(`.Values.<component>`: image, replicaCount, resources, autoscaling, service, pdb, security contexts, ...).
Each component's templates/<component>/workload.yaml calls it with its parameters (the argo-helm `_common.tpl`,
bitnami `common` way):

  include "mcstatbot.workload" (dict
    "ctx"            $                     the root context
    "component"      "bot"                 objects are "<fullname>-<component>", values are .Values.<component>
    "port"           8080                  the container port, named `http`
    "config"         "mcstatbot.bot.config"  template of the ConfigMap's data (the non-secret environment),
                                           called with the root context
    "env"            "mcstatbot.bot.env"   optional: template of extra `env` entries (secret references)
    "checksums"      (dict "checksum/secret" ...)   optional: more pod annotations that roll the pods
    "strategy"       (dict "type" "Recreate")       optional: the Deployment strategy (default: rolling,
                                           never below the desired count)
    "serviceAccount" (dict "name" ... "annotations" ... ["create" false])  its ServiceAccount (`"create"
                                           false`: the pods run as an account made elsewhere, e.g. the bot's)
*/}}
{{- define "mcstatbot.workload" -}}
{{- $p := . -}}
{{- $ctx := .ctx -}}
{{- $v := index $ctx.Values .component -}}
{{- $c := dict "ctx" $ctx "component" .component -}}
{{- $name := include "mcstatbot.componentName" $c -}}
{{- $config := include .config $ctx -}}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is above %s.autoscaling.maxReplicas (%d): the API server refuses such a HorizontalPodAutoscaler." .component (int $v.autoscaling.minReplicas) .component (int $v.autoscaling.maxReplicas)) -}}
{{- end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels:
    {{- include "mcstatbot.labels" $c | nindent 4 }}
data:
  {{- $config | nindent 2 }}
{{- $makeServiceAccount := $ctx.Values.serviceAccount.create -}}
{{- if hasKey $p.serviceAccount "create" }}{{ $makeServiceAccount = and $makeServiceAccount $p.serviceAccount.create }}{{ end -}}
{{- if $makeServiceAccount }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $p.serviceAccount.name }}
  labels:
    {{- include "mcstatbot.labels" $c | nindent 4 }}
  {{- with $p.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "mcstatbot.labels" $c | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    {{- toYaml ($p.strategy | default (dict "type" "RollingUpdate" "rollingUpdate" (dict "maxUnavailable" 0 "maxSurge" 1))) | nindent 4 }}
  selector:
    matchLabels:
      {{- include "mcstatbot.selectorLabels" $c | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mcstatbot.labels" $c | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ $config | sha256sum }}
        {{- with $p.checksums }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $p.serviceAccount.name }}
      automountServiceAccountToken: {{ $ctx.Values.serviceAccount.automountServiceAccountToken }}
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "mcstatbot.podSecurityContext" (dict "ctx" $ctx "values" $v) | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- include "mcstatbot.topologySpread" $c | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "mcstatbot.image" (dict "ctx" $ctx "image" $v.image "ours" true) | quote }}
          imagePullPolicy: {{ include "mcstatbot.imagePullPolicy" (dict "ctx" $ctx "image" $v.image) }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $name }}
          env:
            {{- with $p.env }}
            {{- include . $ctx | nindent 12 }}
            {{- end }}
            {{- include "mcstatbot.otelEnv" $c | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "mcstatbot.probes" $c | nindent 10 }}
          lifecycle:
            preStop:
              # Let the endpoint leave the Service (and the Ingress) before SIGTERM; the service then finishes
              # its in-flight requests within terminationGracePeriodSeconds.
              exec:
                command: ["sleep", "{{ $v.preStopSleepSeconds }}"]
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "mcstatbot.containerSecurityContext" (dict "ctx" $ctx "values" $v) | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $ctx.Values.tmpSizeLimit }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "mcstatbot.labels" $c | nindent 4 }}
spec:
  type: {{ $v.service.type }}
  selector:
    {{- include "mcstatbot.selectorLabels" $c | nindent 4 }}
  ports:
    - name: http
      port: {{ $v.service.port }}
      targetPort: http
      protocol: TCP
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "mcstatbot.labels" $c | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
        - type: Pods
          value: 2
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: {{ $v.autoscaling.scaleDownStabilizationWindowSeconds }}
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
{{- end }}
{{- $pdb := $ctx.Values.pdb.enabled }}
{{- if ne $v.pdb.enabled nil }}{{ $pdb = $v.pdb.enabled }}{{ end }}
{{- if $pdb }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "mcstatbot.labels" $c | nindent 4 }}
spec:
  maxUnavailable: {{ $ctx.Values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "mcstatbot.selectorLabels" $c | nindent 6 }}
{{- end }}
{{- end -}}
