"""Default values of the plugin's ``EKS_*`` configuration keys."""

from __future__ import annotations

import typing as t

#: Let's Encrypt's production ACME directory.
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"

#: Annotations for Caddy's LoadBalancer Service when ``EKS_EDGE`` is ``caddy``.
#: AWS's in-tree controller then creates a Classic Load Balancer that passes TCP
#: through to Caddy, which terminates TLS itself.
CLB_ANNOTATIONS: dict[str, str] = {
    "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "tcp",
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
    "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout": "300",
}

#: What config.yml holds, instead of nothing, for a generated value that is slow
#: to make (an RSA key) when the cluster provides it (``guard.py``): Tutor loads
#: config.yml once before any plugin is loaded and would otherwise generate a new
#: key there, 0.3-1 s, on every command. Never used as a value: the plugin's layers
#: replace it, or Tutor's own default does (``plugin.py``).
STAND_IN = "(tutor-contrib-eks: read from the cluster by each command)"

#: The edge modes (``render/edge.py``): what faces the internet in front of Caddy.
EDGES = ("ingress", "gateway", "alb", "caddy")
ISSUER_KINDS = ("ClusterIssuer", "Issuer")

#: Every key the plugin adds to Tutor's configuration, with its default.
CONFIG_DEFAULTS: dict[str, t.Any] = {
    "ENVIRONMENT": "",
    "ENVIRONMENTS_ROOT": "environments",
    # The plugin's own names and those of the cookiecutter-openedx-devops Terraform
    # (config/secrets.py has the keys each one holds).
    "SECRETS": [
        "mysql-root",
        "mysql-openedx",
        "redis?",
        "mongodb?",
        "mongodb-openedx?",
        "smtp?",
        "aws-ses-config?",
        "s3-openedx-storage?",
        "edx-secret-key?",
        "jwt?",
        "admin-edx?",
    ],
    "SECRET_KEYS": {},
    # The Secret of K8S_NAMESPACE that keeps Tutor's generated values (config/state.py).
    "STATE_SECRET": "tutor-eks-state",
    "EDGE": "ingress",
    "INGRESS_CLASS": "nginx",
    "ISSUER_KIND": "ClusterIssuer",
    # Unique to the environment: environments sharing a cluster must not
    # delete each other's issuer on `tutor k8s delete`.
    "CLUSTER_ISSUER": "{{ K8S_NAMESPACE }}-acme",
    "ACME_EMAIL": "",
    "ACME_SERVER": LETSENCRYPT_PRODUCTION,
    "LOAD_BALANCER_ANNOTATIONS": CLB_ANNOTATIONS,
    # EKS_EDGE gateway: the GatewayClass of the environment's own Gateway, or an
    # existing Gateway ("name" or "namespace/name") its HTTPRoutes attach to.
    "GATEWAY_CLASS": "",
    "GATEWAY": "",
    # EKS_EDGE alb: the ACM certificate(s) of the ALB (comma-separated ARNs; empty:
    # the controller discovers them by host name), the ALB group shared by several
    # Ingresses, and more AWS Load Balancer Controller annotations.
    "ACM_CERTIFICATE_ARN": "",
    "ALB_GROUP": "",
    "ALB_ANNOTATIONS": {},
    # Name of the Secret (and Certificate) holding the TLS key pair of the Ingress.
    "TLS_SECRET": "openedx-tls",
    # Host names served by the Ingress beside those Tutor and its plugins define.
    "EXTRA_HOSTS": [],
    # Seconds `tutor k8s start` (and launch) waits for every Deployment of the
    # instance to roll out (deploy/rollout.py); 0: do not wait.
    "ROLLOUT_TIMEOUT": 600,
    # Seconds an init Job may run before the deploy fails (deploy/jobs.py);
    # 0: wait as long as Tutor does (no limit).
    "JOB_TIMEOUT": 1800,
    # Delete what an earlier deploy of the environment applied and the current
    # render no longer holds (deploy/prune.py).
    "PRUNE": True,
    # Also PersistentVolumeClaims (their volumes' data goes with them).
    "PRUNE_VOLUMES": False,
    # CA certificates (PEM) that verify managed services over TLS; empty: the
    # environment folder's ca-bundle.pem when present (render/tls.py).
    "CA_BUNDLE": "",
    # With TLS on, also check that the server certificate names the host.
    "TLS_CHECK_HOSTNAME": True,
    # Per Deployment: replicas, autoscaling, requests, limits, max_unavailable,
    # grace (render/workloads.py); safe defaults apply without it.
    "WORKLOADS": {},
}

#: Settings of the Secret contract that Tutor does not define, with their defaults:
#: they may come from a Secret or the environment's config.yml (render/tls.py).
SERVICE_DEFAULTS: dict[str, t.Any] = {
    # Every key the environment writes to Redis starts with "<prefix>:", so that
    # environments sharing one Redis (one ElastiCache per stack) stay apart.
    "REDIS_KEY_PREFIX": "{{ K8S_NAMESPACE }}",
    # rediss:// everywhere, certificates verified.
    "REDIS_USE_SSL": False,
    # MySQL over TLS, certificate verified (RDS: require_secure_transport).
    "MYSQL_USE_SSL": False,
    # false for Amazon DocumentDB, which has no retryable writes.
    "MONGODB_RETRY_WRITES": True,
}


#: Keys the plugin itself reads from Secrets, without a default: they reach the
#: configuration when a Secret provides them (S3 storage, the admin user).
SECRET_SETTINGS = (
    "S3_STORAGE_BUCKET",
    "S3_REGION",
    "S3_CUSTOM_DOMAIN",
    "S3_ENDPOINT_URL",
    "ADMIN_USER",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
)

#: The keys that select an environment: the only ones defined while the plugin is
#: inert (Tutor renders every default value on every config load).
SELECTION_KEYS = ("ENVIRONMENT", "ENVIRONMENTS_ROOT")


def config_defaults(active: bool = True) -> list[tuple[str, t.Any]]:
    """The defaults as Tutor's CONFIG_DEFAULTS items: the plugin's own keys with
    the ``EKS_`` prefix, and (with an environment selected) the Secret contract's
    service settings."""
    items = [
        (f"EKS_{key}", value)
        for key, value in CONFIG_DEFAULTS.items()
        if active or key in SELECTION_KEYS
    ]
    return items + list(SERVICE_DEFAULTS.items()) if active else items
