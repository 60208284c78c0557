{{/* Names ---------------------------------------------------------------------------------------- */}}
{{- define "mcstatbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mcstatbot.fullname" -}}
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

{{/* "<fullname>-<component>", at most 63 characters (a Service name is a DNS label): the fullname is cut to
make room for the component; call with (dict "ctx" $ "component" "bot") */}}
{{- define "mcstatbot.componentName" -}}
{{- printf "%s-%s" (include "mcstatbot.fullname" .ctx | trunc (int (min 52 (sub 62 (len .component)))) | trimSuffix "-") .component -}}
{{- end -}}

{{/* Labels: selector labels are name, instance and component only (they never change). */}}
{{- define "mcstatbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcstatbot.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mcstatbot.labels" -}}
{{ include "mcstatbot.selectorLabels" . }}
app.kubernetes.io/part-of: mcstatbot
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Images ----------------------------------------------------------------------------------------
An image reference "[registry/]repository[:tag][@digest]"; call with (dict "ctx" $ "image" <an image block>
["ours" true]). The registry is the image's own `registry`, else `global.imageRegistry`; the tag its own
`tag`, else, for the chart's own images ("ours": bot, query), `global.imageTag`, then the chart's appVersion;
a `digest` ("sha256:...") follows the tag, so the reference is pinned by content. Named templates are shared
by a chart and its subcharts: the Redis subchart uses this one too. */}}
{{- define "mcstatbot.image" -}}
{{- $global := .ctx.Values.global | default dict -}}
{{- $registry := .image.registry | default $global.imageRegistry -}}
{{- $tag := .image.tag | default "" | toString -}}
{{- if and (not $tag) .ours -}}
{{- $tag = $global.imageTag | default .ctx.Chart.AppVersion | toString -}}
{{- end -}}
{{- $ref := .image.repository -}}
{{- if $registry -}}{{- $ref = printf "%s/%s" (trimSuffix "/" $registry) $ref -}}{{- end -}}
{{- if $tag -}}{{- $ref = printf "%s:%s" $ref $tag -}}{{- end -}}
{{- with .image.digest -}}{{- $ref = printf "%s@%s" $ref . -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The pull policy of an image: its own `pullPolicy`, else `global.imagePullPolicy`, else IfNotPresent. */}}
{{- define "mcstatbot.imagePullPolicy" -}}
{{- .image.pullPolicy | default (.ctx.Values.global | default dict).imagePullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{/* Security contexts: the chart-wide hardened defaults (`podSecurityContext`, `containerSecurityContext`)
with a component's own (`<component>.podSecurityContext`, ...) merged over them, key by key. Call with
(dict "ctx" $ "values" <the component's values block>). */}}
{{- define "mcstatbot.podSecurityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .ctx.Values.podSecurityContext) (deepCopy (.values.podSecurityContext | default dict))) -}}
{{- end -}}

{{- define "mcstatbot.containerSecurityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .ctx.Values.containerSecurityContext) (deepCopy (.values.containerSecurityContext | default dict))) -}}
{{- end -}}

{{/* ServiceAccounts ------------------------------------------------------------------------------- */}}
{{- define "mcstatbot.botServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mcstatbot.componentName" (dict "ctx" . "component" "bot")) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mcstatbot.queryServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mcstatbot.componentName" (dict "ctx" . "component" "query")) .Values.serviceAccount.queryName -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.queryName -}}
{{- end -}}
{{- end -}}

{{/* The watcher runs as the bot's ServiceAccount (the same IRSA role: its DynamoDB access is the bot's) unless
serviceAccount.watcherName names one of its own, which the chart then makes (with
serviceAccount.watcherAnnotations) when serviceAccount.create. */}}
{{- define "mcstatbot.watcherHasOwnServiceAccount" -}}
{{- if .Values.serviceAccount.watcherName -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{- define "mcstatbot.watcherServiceAccountName" -}}
{{- default (include "mcstatbot.botServiceAccountName" .) .Values.serviceAccount.watcherName -}}
{{- end -}}

{{/* Secrets --------------------------------------------------------------------------------------- */}}
{{- define "mcstatbot.telegramSecretName" -}}
{{- default (include "mcstatbot.componentName" (dict "ctx" . "component" "telegram")) .Values.telegram.existingSecret -}}
{{- end -}}

{{- define "mcstatbot.redisSecretName" -}}
{{- default (include "mcstatbot.componentName" (dict "ctx" . "component" "redis-url")) .Values.externalRedis.existingSecret -}}
{{- end -}}

{{/* The in-cluster Redis Service name: the subchart names it "<release>-redis". */}}
{{- define "mcstatbot.redisHost" -}}
{{- printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* REDIS_URL for a component that uses Redis (the query service's cache, the bot's and the watcher's
Telegram send budget, the watcher's replicas): "mcstatbot.redisConfig" is its ConfigMap lines (REDIS_URL
for the in-cluster Redis, REDIS_CLUSTER always), "mcstatbot.redisEnv" its
`env` entry from the Secret for an external one (externalRedis.url or existingSecret), and
"mcstatbot.redisChecksums" adds the chart-made Secret's checksum to a component's pod annotations. */}}
{{- define "mcstatbot.redisConfig" -}}
{{- if .Values.redis.enabled }}
REDIS_URL: {{ printf "redis://%s:6379/%d" (include "mcstatbot.redisHost" .) (int .Values.redis.database) | quote }}
REDIS_CLUSTER: "false"
{{- else }}
REDIS_CLUSTER: {{ .Values.externalRedis.cluster | toString | quote }}
{{- end }}
{{- end -}}

{{- define "mcstatbot.redisEnv" -}}
{{- if not .Values.redis.enabled }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "mcstatbot.redisSecretName" . }}
      key: {{ .Values.externalRedis.existingSecretKey }}
{{- end }}
{{- end -}}

{{- define "mcstatbot.redisChecksums" -}}
{{- if and (not .ctx.Values.redis.enabled) (not .ctx.Values.externalRedis.existingSecret) }}
{{- $_ := set .checksums "checksum/redis-secret" (include (print .ctx.Template.BasePath "/redis-secret.yaml") .ctx | sha256sum) }}
{{- end }}
{{- end -}}

{{/* The watch settings both the bot (its limits, the first live card) and the watcher read. */}}
{{- define "mcstatbot.watchConfig" }}
WATCH_MAX_PER_CHAT: {{ .Values.watcher.maxPerChat | toString | quote }}
LIVE_INTERVAL_SECONDS: {{ .Values.watcher.liveIntervalSeconds | toString | quote }}
{{- end -}}

{{/* Webhook URL: explicit, or https://<first ingress host>/telegram/webhook. */}}
{{- define "mcstatbot.webhookUrl" -}}
{{- if .Values.telegram.webhookUrl -}}
{{- .Values.telegram.webhookUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- printf "https://%s/telegram/webhook" (first .Values.ingress.hosts).host -}}
{{- end -}}
{{- end -}}

{{/* The collector in use: "" (none), the in-chart one, or otel.endpoint. */}}
{{- define "mcstatbot.inChartCollector" -}}
{{- if and .Values.otel.enabled .Values.otel.collector.enabled (not .Values.otel.endpoint) -}}true{{- end -}}
{{- end -}}

{{- define "mcstatbot.otelEndpoint" -}}
{{- if .Values.otel.endpoint -}}
{{- .Values.otel.endpoint -}}
{{- else if include "mcstatbot.inChartCollector" . -}}
{{- printf "http://%s:4318" (include "mcstatbot.componentName" (dict "ctx" . "component" "otel-collector")) -}}
{{- end -}}
{{- end -}}

{{/* Values checks: fail early with a message that says what to change. --------------------------- */}}
{{- define "mcstatbot.validate" -}}
{{- $hasExternal := or .Values.externalRedis.url .Values.externalRedis.existingSecret -}}
{{- if and .Values.redis.enabled $hasExternal -}}
{{- fail "Redis: set either redis.enabled=true (in-cluster Redis) or externalRedis.url/externalRedis.existingSecret (e.g. ElastiCache), not both." -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (not $hasExternal) -}}
{{- fail "Redis: set redis.enabled=true (in-cluster Redis) or externalRedis.url/externalRedis.existingSecret (e.g. ElastiCache rediss://...); neither is set." -}}
{{- end -}}
{{- if and .Values.externalRedis.url .Values.externalRedis.existingSecret -}}
{{- fail "Redis: set externalRedis.url or externalRedis.existingSecret, not both." -}}
{{- end -}}
{{- if and .Values.externalRedis.url (not (regexMatch "^rediss?://" .Values.externalRedis.url)) -}}
{{- fail (printf "Redis: externalRedis.url must start with redis:// or rediss:// (got %q)." .Values.externalRedis.url) -}}
{{- end -}}
{{- if and (not .Values.telegram.existingSecret) (not .Values.telegram.token) -}}
{{- fail "Telegram: set telegram.token (the chart makes a Secret) or telegram.existingSecret (a Secret you made)." -}}
{{- end -}}
{{- if eq .Values.telegram.mode "polling" -}}
{{- if .Values.bot.autoscaling.enabled -}}
{{- fail "telegram.mode=polling runs exactly one bot replica (two pollers conflict at Telegram): set bot.autoscaling.enabled=false and bot.replicaCount=1." -}}
{{- end -}}
{{- if ne (int .Values.bot.replicaCount) 1 -}}
{{- fail (printf "telegram.mode=polling runs exactly one bot replica (two pollers conflict at Telegram): set bot.replicaCount=1 (got %d)." (int .Values.bot.replicaCount)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.bot.stateBackend "memory") (or .Values.bot.autoscaling.enabled (gt (int .Values.bot.replicaCount) 1)) -}}
{{- fail "bot.stateBackend=memory keeps chat state in one pod: use dynamodb with several replicas or autoscaling." -}}
{{- end -}}
{{- if and .Values.watcher.enabled (eq .Values.bot.stateBackend "memory") -}}
{{- fail "bot.stateBackend=memory keeps the watches inside the bot's pod, where the watcher cannot read them: use dynamodb, or watcher.enabled=false." -}}
{{- end -}}
{{- if and .Values.ingress.enabled .Values.ingress.allowedSourceRanges (not .Values.ingress.sourceRangeAnnotation) (not (or (contains "alb" .Values.ingress.className) (contains "nginx" .Values.ingress.className) (contains "traefik" .Values.ingress.className))) -}}
{{- fail (printf "ingress.allowedSourceRanges: cannot tell which annotation ingress class %q reads; set ingress.sourceRangeAnnotation, or ingress.allowedSourceRanges=[] to admit all." .Values.ingress.className) -}}
{{- end -}}
{{- $botService := include "mcstatbot.componentName" (dict "ctx" . "component" "bot") -}}
{{- if and .Values.ingress.enabled (contains "alb" .Values.ingress.className) (gt (len $botService) 52) -}}
{{- fail (printf "ingress.className=%s: the AWS Load Balancer Controller's annotation alb.ingress.kubernetes.io/conditions.<service> holds a Service name of at most 52 characters, and %q has %d: set a shorter fullnameOverride (or release name)." .Values.ingress.className $botService (len $botService)) -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.httpsCidrs) -}}
{{- fail "networkPolicy.httpsCidrs is empty, which a NetworkPolicy reads as \"any address\" (cloud metadata included): list the CIDRs bot and collector may reach on 443 (the default 0.0.0.0/0 excludes networkPolicy.blockedCidrs)." -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.minecraft.allowAnyPort) (not .Values.networkPolicy.minecraft.tcpPorts) (not .Values.networkPolicy.minecraft.udpPorts) -}}
{{- fail "networkPolicy.minecraft.allowAnyPort=false with no tcpPorts and no udpPorts: an empty port list is read as \"every port\"; list the Minecraft ports (e.g. tcpPorts [25565], udpPorts [19132]) or set allowAnyPort=true." -}}
{{- end -}}
{{- if and .Values.ingress.enabled (eq .Values.telegram.mode "polling") -}}
{{- fail "ingress.enabled=true needs telegram.mode=webhook (a polling bot receives no webhook calls)." -}}
{{- end -}}
{{- end -}}

{{/* Pod-level pieces shared by bot and query ------------------------------------------------------ */}}
{{- define "mcstatbot.topologySpread" -}}
{{- if .ctx.Values.topologySpread.enabled -}}
topologySpreadConstraints:
  {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: {{ $.ctx.Values.topologySpread.maxSkew }}
    topologyKey: {{ $key }}
    whenUnsatisfiable: {{ $.ctx.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "mcstatbot.selectorLabels" $ | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
  {{- end }}
{{- end }}
{{- end -}}

{{- define "mcstatbot.probes" -}}
{{- $p := .ctx.Values.probes -}}
startupProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
readinessProbe:
  httpGet:
    path: /ready
    port: http
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
livenessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- end -}}

{{/* OTEL_* variables of a service; call with (dict "ctx" $ "component" "bot") */}}
{{- define "mcstatbot.otelEnv" -}}
- name: OTEL_SERVICE_NAME
  value: {{ printf "mcstatbot-%s" .component | quote }}
{{- $endpoint := include "mcstatbot.otelEndpoint" .ctx }}
{{- if and .ctx.Values.otel.enabled $endpoint }}
- name: OTEL_TRACES_EXPORTER
  value: otlp
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_PROPAGATORS
  value: {{ .ctx.Values.otel.propagators | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .ctx.Values.otel.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .ctx.Values.otel.samplerArg | quote }}
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=mcstatbot,k8s.namespace.name=%s%s" .ctx.Release.Namespace (ternary (printf ",%s" .ctx.Values.otel.resourceAttributes) "" (ne .ctx.Values.otel.resourceAttributes "")) | quote }}
{{- end -}}

{{/* A memory quantity ("256Mi", "1Gi", "512M") in MiB, for GOMEMLIMIT. */}}
{{- define "mcstatbot.memMiB" -}}
{{- $q := toString . -}}
{{- if hasSuffix "Gi" $q -}}{{ mul (trimSuffix "Gi" $q | int) 1024 }}
{{- else if hasSuffix "Mi" $q -}}{{ trimSuffix "Mi" $q | int }}
{{- else if hasSuffix "G" $q -}}{{ div (mul (trimSuffix "G" $q | int) 1000000000) 1048576 }}
{{- else if hasSuffix "M" $q -}}{{ div (mul (trimSuffix "M" $q | int) 1000000) 1048576 }}
{{- else -}}{{ fail (printf "otel.collector.resources.limits.memory: use Mi, Gi, M or G (got %q)" $q) }}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy egress rules shared by the policies (networkpolicy.yaml). */}}
{{- define "mcstatbot.np.dns" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{- /* Egress to addresses outside the cluster: (dict "root" $ "ports" list ["cidrs" list] ["except" list]).
Defaults: networkPolicy.httpsCidrs, each 0.0.0.0/0 minus networkPolicy.blockedCidrs. */ -}}
{{- define "mcstatbot.np.internet" -}}
{{- $root := .root -}}
{{- $except := .except | default $root.Values.networkPolicy.blockedCidrs -}}
- to:
    {{- range (.cidrs | default $root.Values.networkPolicy.httpsCidrs) }}
    - ipBlock:
        cidr: {{ . }}
        {{- if eq . "0.0.0.0/0" }}
        except:
          {{- toYaml $except | nindent 10 }}
        {{- end }}
    {{- end }}
  ports:
    {{- toYaml .ports | nindent 4 }}
{{- end -}}

{{/* Egress to Redis: the in-cluster one by its pods, or an external one (ElastiCache) by its port. */}}
{{- define "mcstatbot.np.redis" -}}
{{- if .Values.redis.enabled }}
- to:
    - podSelector:
        matchLabels:
          app.kubernetes.io/name: redis
          app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
    - port: 6379
      protocol: TCP
{{- else }}
# ElastiCache (outside the cluster).
- ports:
    - port: {{ .Values.externalRedis.port }}
      protocol: TCP
{{- end }}
{{- end -}}

{{- define "mcstatbot.np.collector" -}}
{{- if include "mcstatbot.inChartCollector" . }}
- to:
    - podSelector:
        matchLabels:
          {{- include "mcstatbot.selectorLabels" (dict "ctx" . "component" "otel-collector") | nindent 10 }}
  ports:
    - port: 4318
      protocol: TCP
{{- else if and .Values.otel.enabled .Values.otel.endpoint }}
# An existing collector elsewhere in the cluster or outside it.
- ports:
    - port: {{ .Values.otel.endpointPort }}
      protocol: TCP
{{- end }}
{{- end -}}
