"""`helm install` of charts/mcstatbot on a real cluster, helm 3 and helm 4, for each documented values set.

Each case installs into its own namespace labelled `pod-security.kubernetes.io/enforce=restricted` and
checks what static checks cannot: the API server accepts every object (admission, PodSecurity, RBAC), every
Deployment (bot, query, watcher, Redis) rolls out, every pod's readiness probe passes, and `helm test` passes
(it calls the bot's, the query service's and the watcher's /ready). The values sets:

- `kind`: k8s/overlays/kind/app/values.yaml (webhook mode, in-cluster Redis, Ingress, DynamoDB Local),
- `polling`: the kind values in polling mode (one replica, no HPA, no Ingress),
- `eks`: k8s/overlays/eks/app/values.yaml as an ALB operator starts (className `alb`, no `hosts`: the ALB
  gives the DNS name), `externalRedis` pointing at a Redis Service, the IRSA annotation.

Adapted to this cluster by one more values file (never by editing the sets): the images built here, the
Ingress class `traefik` (the cluster's controller), the Bot API test server and DynamoDB Local on the host
end of the cluster's link (Telegram and AWS cannot be reached), and no OpenTelemetry collector (its image
is not built here).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.cluster.conftest import (
    CHART,
    EKS_VALUES,
    HELMS,
    KIND_VALUES,
    REDIS_IMAGE,
    RELEASE,
    cluster_values,
    link_service,
    namespace,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_testkit.dynamodb import DynamoDBLocal

    from tests.cluster.conftest import AppImages, Cluster, LinkBotApiServer

# The first test also waits for the session's cluster (a cold toolchain build takes most of an hour).
pytestmark = pytest.mark.timeout(7200)

REDIS_SERVICE = f"""
# The "external" Redis of the EKS values (ElastiCache's stand-in): Debian's redis-server, restricted.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: redis
spec:
  selector:
    matchLabels: {{app: redis}}
  template:
    metadata:
      labels: {{app: redis}}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10999
        runAsGroup: 10999
        seccompProfile: {{type: RuntimeDefault}}
      containers:
        - name: redis
          image: {REDIS_IMAGE}
          imagePullPolicy: Never
          args: [redis-server, --port, "6379", --save, "", --appendonly, "no", --protected-mode, "no"]
          ports:
            - {{name: redis, containerPort: 6379}}
          readinessProbe:
            exec:
              command: [redis-cli, ping]
          resources:
            requests: {{cpu: 20m, memory: 32Mi}}
            limits: {{cpu: 200m, memory: 64Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
          volumeMounts:
            - {{name: data, mountPath: /data}}
      volumes:
        - {{name: data, emptyDir: {{}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: redis
spec:
  selector: {{app: redis}}
  ports:
    - {{name: redis, port: 6379, targetPort: redis}}
"""


def chart_objects(cluster: Cluster, helm: Path, ns: str) -> list[dict[str, Any]]:
    manifest = cluster.run(str(helm), "get", "manifest", RELEASE, "-n", ns).stdout
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def assert_installed(cluster: Cluster, helm: Path, ns: str) -> None:
    """Every object of the release exists, every Deployment is rolled out, every pod is ready."""
    objects = chart_objects(cluster, helm, ns)
    assert objects, "the release has no objects"
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        target = obj["metadata"].get("namespace", ns)
        found = cluster.kubectl("get", kind, name, "-n", target, "-o", "name", check=False)
        assert found.returncode == 0, f"{kind}/{name} of the release is missing: {found.stderr}"
    deployments = [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"]
    assert deployments, "the release has no Deployment"
    for name in deployments:
        cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=240s", timeout=260)
        status = cluster.kubectl_json("get", "deployment", name, "-n", ns)["status"]
        assert status.get("readyReplicas", 0) == status.get("replicas", 0) > 0, (name, status)
    pods = cluster.kubectl_json("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={RELEASE}")[
        "items"
    ]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running, "no pod of the release runs"
    for pod in running:
        ready = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        assert ready.get("Ready") == "True", (pod["metadata"]["name"], pod["status"])


def describe(cluster: Cluster, ns: str) -> str:
    views = (("get", "all,ingress,events", "-n", ns), ("describe", "pods", "-n", ns))
    return "\n".join(cluster.kubectl(*args, check=False).stdout[-6000:] for args in views)


CASES = [(helm, case) for helm in HELMS for case in ("kind", "polling", "eks")]


@pytest.mark.parametrize(("helm_name", "case"), CASES, ids=[f"{h}-{c}" for h, c in CASES])
def test_helm_install(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    app_images: AppImages,
    bot_api: LinkBotApiServer,
    dynamodb: DynamoDBLocal,
    tmp_path: Path,
    helm_name: str,
    case: str,
) -> None:
    helm = HELMS[helm_name]
    assert helm.is_file(), f"{helm} is missing: run scripts/install-test-deps.sh"
    documented = EKS_VALUES if case == "eks" else KIND_VALUES
    overrides = tmp_path / "cluster-values.yaml"
    overrides.write_text(json.dumps(cluster_values(case, app_images, bot_api)))
    with namespace(cluster, f"{helm_name}-{case}") as ns:
        cluster.kubectl(
            "create", "secret", "generic", "mcstatbot-telegram", "-n", ns,
            f"--from-literal=telegram-bot-token={bot_api.token}",
            f"--from-literal=webhook-secret={secrets.token_hex(16)}",
        )  # fmt: skip
        cluster.apply(link_service("dynamodb-local", cluster.host_ip, 8000, dynamodb.port), ns)
        if case == "eks":
            cluster.apply(REDIS_SERVICE, ns)
            cluster.kubectl("rollout", "status", "deployment/redis", "-n", ns, "--timeout=120s", timeout=150)
        install = cluster.run(
            str(helm), "install", RELEASE, str(CHART), "-n", ns, "-f", str(documented), "-f", str(overrides),
            "--wait", "--timeout", "5m",
            check=False, timeout=420,
        )  # fmt: skip
        assert install.returncode == 0, (
            f"{helm_name} install with the {case} values failed:\n"
            f"{install.stderr[-4000:]}\n{describe(cluster, ns)}"
        )
        assert_installed(cluster, helm, ns)
        watcher = cluster.kubectl_json("get", "deployment", f"{RELEASE}-watcher", "-n", ns)["status"]
        assert watcher.get("readyReplicas", 0) >= 1, watcher
        # The test Pod calls bot, query and watcher /ready through their Services and fails unless each
        # answers 200; it is deleted once it passed (hook-succeeded), a failed one stays for its log.
        test = cluster.run(str(helm), "test", RELEASE, "-n", ns, "--timeout", "3m", check=False, timeout=240)
        if test.returncode != 0:
            logs = cluster.kubectl("logs", f"{RELEASE}-helm-test", "-n", ns, check=False).stdout
            pytest.fail(f"helm test failed:\n{test.stdout}\n{test.stderr}\n{logs}")
        assert re.search(r"Phase:\s+Succeeded", test.stdout), test.stdout
        test_pod = f"{RELEASE}-helm-test"
        kept = cluster.kubectl("get", "pod", test_pod, "-n", ns, "--ignore-not-found", "-o=name")
        assert not kept.stdout.strip(), "the passed test Pod was kept (helm uninstall would leave it behind)"
        cluster.run(str(helm), "uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "3m", timeout=240)
