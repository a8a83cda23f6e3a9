"""The backing services an environment shares with others: Redis key prefixes, and
TLS to Redis, MySQL and MongoDB verified with the environment's CA bundle.

Environments of one stack may share one Redis (the cookiecutter-openedx-devops
stacks share one ElastiCache per stack). Tutor 22 gives every installation the same
cache key prefixes, the same Celery queue names and the same event bus topics, so
two environments on one Redis would read each other's sessions and run each other's
tasks. The LMS and CMS settings get, at the very end of ``production.py`` (the
``openedx-{lms,cms}-production-settings`` patches):

- every Redis cache's ``KEY_PREFIX`` prefixed with ``<REDIS_KEY_PREFIX>:``;
- the Celery broker's ``global_keyprefix`` (kombu prefixes every key, queues and
  bindings included);
- the event bus URL built from ``REDIS_*`` (Tutor hard-codes ``redis://@redis:6379/``)
  and its topic prefix set to the environment's prefix;
- with ``REDIS_USE_SSL``: ``rediss://`` for the caches, the broker and the event
  bus, certificates verified (``ssl_cert_reqs`` required) with the CA bundle;
  ``REDIS_PASSWORD`` without ``REDIS_USERNAME`` is an AUTH token; user and
  password are percent-escaped in every URL;
- with ``MYSQL_USE_SSL``: every MySQL database verifies the server with the CA bundle;
- with ``MONGODB_USE_SSL``: the modulestore and content store verify with it;
  ``MONGODB_RETRY_WRITES: false`` for Amazon DocumentDB.

The CA bundle ships as the ConfigMap ``openedx-ca-bundle``, mounted at
:data:`CA_DIR` in every Open edX container and every init Job (``render/kustomize.py``).
The values reach the settings as JSON decoded by ``json.loads`` (as settings_merge
does, ``render/settings.py``): no value can become code.
"""

from __future__ import annotations

import typing as t

from ..config import values
from ..config.state import DEPLOYED_AT_ANNOTATION, REDIS_PREFIX_ANNOTATION
from ..exceptions import EksError
from .settings import encode

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..environment import CaBundle

CA_CONFIGMAP = "openedx-ca-bundle"
CA_VOLUME = "tutoreks-ca-bundle"
#: Where the bundle is mounted in the pods.
CA_DIR = "/etc/tutor-eks/ca"
CA_KEY = "ca-bundle.pem"
CA_PATH = f"{CA_DIR}/{CA_KEY}"

#: Applies the data to the settings module's globals; runs in production.py.
APPLY_FUNCTION = """\
def _tutoreks_redis_ssl(data, ssl_module):
    if not data["redis"]["ssl"]:
        return {}
    options = {"ssl_cert_reqs": ssl_module.CERT_REQUIRED, "ssl_check_hostname": data["check_hostname"]}
    if data["ca"]:
        options["ssl_ca_certs"] = data["ca"]
    return options


def _tutoreks_redis_server(redis):
    from urllib.parse import quote

    auth = ""
    if redis["password"]:
        user = quote(redis["username"], safe="") if redis["username"] else ""
        auth = user + ":" + quote(redis["password"], safe="") + "@"
    scheme = "rediss" if redis["ssl"] else "redis"
    return scheme + "://" + auth + redis["host"] + ":" + str(redis["port"])


def _tutoreks_redis_target(location):
    # host:port and path of a redis:// URL whose user part Tutor did not escape
    rest = location.split("://", 1)[-1].rsplit("@", 1)[-1]
    server, _, path = rest.partition("/")
    return server.lower(), path.split("?", 1)[0]


def _tutoreks_caches(settings, data, server, ssl_options):
    redis = data["redis"]
    ours = (redis["host"] + ":" + str(redis["port"])).lower()
    for cache in (settings.get("CACHES") or {}).values():
        backend = str(cache.get("BACKEND", ""))
        if "redis" not in backend.lower():
            continue
        cache["KEY_PREFIX"] = redis["prefix"] + ":" + str(cache.get("KEY_PREFIX") or "")
        target, path = _tutoreks_redis_target(str(cache.get("LOCATION", "")))
        if target != ours:
            continue
        cache["LOCATION"] = server + "/" + (path or str(redis["cache_db"]))
        options = cache.setdefault("OPTIONS", {})
        if backend.startswith("django_redis."):
            options = options.setdefault("CONNECTION_POOL_KWARGS", {})
        options.update(ssl_options)


def _tutoreks_celery(settings, data, server, ssl_options):
    if not str(settings.get("BROKER_URL", "redis")).startswith("redis"):
        return
    settings["BROKER_URL"] = server + "/" + str(data["redis"]["celery_db"])
    options = dict(settings.get("BROKER_TRANSPORT_OPTIONS") or {})
    options["global_keyprefix"] = data["redis"]["prefix"] + ":"
    settings["BROKER_TRANSPORT_OPTIONS"] = options
    if ssl_options:
        settings["BROKER_USE_SSL"] = ssl_options


def _tutoreks_event_bus(settings, data, server):
    from urllib.parse import urlencode

    query = ""
    if data["redis"]["ssl"]:
        params = {"ssl_cert_reqs": "required", "ssl_check_hostname": str(data["check_hostname"]).lower()}
        if data["ca"]:
            params["ssl_ca_certs"] = data["ca"]
        query = "?" + urlencode(params)
    settings["EVENT_BUS_REDIS_CONNECTION_URL"] = server + "/" + query
    settings["EVENT_BUS_TOPIC_PREFIX"] = data["redis"]["prefix"]


def _tutoreks_mysql(settings, data):
    if not data["mysql"]["ssl"]:
        return
    mode = "VERIFY_IDENTITY" if data["check_hostname"] else "VERIFY_CA"
    for database in (settings.get("DATABASES") or {}).values():
        if "mysql" in str(database.get("ENGINE", "")):
            options = database.setdefault("OPTIONS", {})
            options["ssl"] = {"ca": data["ca"]}
            options["ssl_mode"] = mode


def _tutoreks_mongodb(settings, data):
    extra = {}
    if data["mongodb"]["ssl"] and data["ca"]:
        extra["tlsCAFile"] = data["ca"]
    if data["mongodb"]["ssl"] and not data["check_hostname"]:
        extra["tlsAllowInvalidHostnames"] = True
    if not data["mongodb"]["retry_writes"]:
        extra["retryWrites"] = False
    if not extra:
        return
    configs = [settings.get("mongodb_parameters"), settings.get("DOC_STORE_CONFIG")]
    configs.append((settings.get("CONTENTSTORE") or {}).get("DOC_STORE_CONFIG"))
    configs.append(settings.get("FORUM_MONGODB_CLIENT_PARAMETERS"))
    modulestore = (settings.get("MODULESTORE") or {}).get("default") or {}
    for store in (modulestore.get("OPTIONS") or {}).get("stores") or []:
        configs.append(store.get("DOC_STORE_CONFIG"))
    for config in configs:
        if isinstance(config, dict):
            config.update(extra)


def _tutoreks_backing_services(settings, data):
    import ssl

    server = _tutoreks_redis_server(data["redis"])
    ssl_options = _tutoreks_redis_ssl(data, ssl)
    _tutoreks_caches(settings, data, server, ssl_options)
    _tutoreks_celery(settings, data, server, ssl_options)
    _tutoreks_event_bus(settings, data, server)
    _tutoreks_mysql(settings, data)
    _tutoreks_mongodb(settings, data)
"""

FUNCTIONS = (
    "_tutoreks_redis_ssl",
    "_tutoreks_redis_target",
    "_tutoreks_redis_server",
    "_tutoreks_caches",
    "_tutoreks_celery",
    "_tutoreks_event_bus",
    "_tutoreks_mysql",
    "_tutoreks_mongodb",
    "_tutoreks_backing_services",
)


def settings_data(
    config: t.Mapping[str, t.Any], ca: CaBundle | None
) -> dict[str, t.Any]:
    """What the settings patch needs, from the exact (unescaped) configuration."""
    mysql_ssl = flag(config, "MYSQL_USE_SSL")
    if mysql_ssl and ca is None:
        raise EksError(
            "MYSQL_USE_SSL is true but the environment has no CA bundle: add the CA "
            "certificates of the database server (for RDS, the AWS RDS bundle) as "
            "ca-bundle.pem in the environment folder, or name a file with EKS_CA_BUNDLE."
        )
    return {
        "redis": {
            "host": str(config["REDIS_HOST"]),
            "port": int(config["REDIS_PORT"]),
            "username": str(config.get("REDIS_USERNAME") or ""),
            "password": str(config.get("REDIS_PASSWORD") or ""),
            "prefix": prefix(config),
            "ssl": flag(config, "REDIS_USE_SSL"),
            "cache_db": int(config["OPENEDX_CACHE_REDIS_DB"]),
            "celery_db": int(config["OPENEDX_CELERY_REDIS_DB"]),
        },
        "mysql": {"ssl": mysql_ssl},
        "mongodb": {
            "ssl": flag(config, "MONGODB_USE_SSL"),
            "retry_writes": flag(config, "MONGODB_RETRY_WRITES", True),
        },
        "ca": CA_PATH if ca is not None else None,
        "check_hostname": flag(config, "EKS_TLS_CHECK_HOSTNAME", True),
    }


def prefix(config: t.Mapping[str, t.Any]) -> str:
    """REDIS_KEY_PREFIX, checked (it may come from the environment's config.yml)."""
    value = str(config.get("REDIS_KEY_PREFIX") or "")
    values.check_prefix(value, "REDIS_KEY_PREFIX")
    return value


def flag(config: t.Mapping[str, t.Any], key: str, default: bool = False) -> bool:
    """A boolean setting; "true"/"false" text (a TUTOR_ variable, a Secret) too."""
    value = config.get(key, default)
    if isinstance(value, bool):
        return value
    return bool(values.typed(key, str(value), False, key))


def settings_code(data: dict[str, t.Any]) -> str:
    """The Python that applies ``data`` to the settings module, at its end."""
    return "\n".join(
        [
            "# tutor-contrib-eks: Redis key prefix, TLS to Redis, MySQL and MongoDB",
            APPLY_FUNCTION,
            "import json as _tutoreks_json",
            "_tutoreks_backing_services(globals(), _tutoreks_json.loads(r'''"
            + encode(data)
            + "'''))",
            f"del _tutoreks_json, {', '.join(FUNCTIONS)}",
            "",
        ]
    )


def settings_patch(config: t.Mapping[str, t.Any], resolution: Resolution) -> str:
    """Template global ``eks_service_settings()``: the settings patch."""
    exact = {**config, **resolution.raw_values()}
    return settings_code(settings_data(exact, resolution.ca_bundle))


def ca_configmap(ca: CaBundle) -> dict[str, t.Any]:
    """The ConfigMap the pods mount the CA bundle from (certificates are public)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CA_CONFIGMAP,
            "labels": {"app.kubernetes.io/name": "openedx-ca-bundle"},
        },
        "data": {CA_KEY: ca.text},
    }


def ca_volume() -> dict[str, t.Any]:
    return {"name": CA_VOLUME, "configMap": {"name": CA_CONFIGMAP}}


def ca_mount() -> dict[str, t.Any]:
    return {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True}


#: Prepended to every task script: the ``mysql`` client of Tutor's init and
#: maintenance tasks verifies the server. The MySQL client (Tutor's image) takes
#: ``--ssl-mode``; a MariaDB client (``DOCKER_IMAGE_MYSQL`` set to MariaDB) takes
#: ``--ssl-verify-server-cert``, which also checks the host name.
MYSQL_TASK_PRELUDE = (
    "{% if MYSQL_USE_SSL %}"
    "# tutor-contrib-eks: MySQL over TLS (MYSQL_USE_SSL), the server verified\n"
    "mysql() {\n"
    '  case "$(command mysql --version 2>/dev/null)" in\n'
    "    *MariaDB*) command mysql --ssl --ssl-ca=" + CA_PATH + " "
    "{% if EKS_TLS_CHECK_HOSTNAME %}--ssl-verify-server-cert {% endif %}"
    '"$@" ;;\n'
    "    *) command mysql --ssl-ca=" + CA_PATH + " --ssl-mode="
    "{% if EKS_TLS_CHECK_HOSTNAME %}VERIFY_IDENTITY{% else %}VERIFY_CA{% endif %}"
    ' "$@" ;;\n'
    "  esac\n"
    "}\n"
    "{% endif %}"
)


def task_prelude(script: str) -> str:
    """``script`` with the TLS ``mysql`` function first when it calls ``mysql``."""
    if "mysql " not in script:
        return script
    return MYSQL_TASK_PRELUDE + script


def prefix_change(annotations: t.Mapping[str, str], current: str) -> str | None:
    """What to tell the operator when this deploy changes the environment's Redis
    key prefix (``annotations``: the state's, from the last successful deploy)."""
    if DEPLOYED_AT_ANNOTATION not in annotations:
        return None  # a first deploy: nothing was written under another prefix
    previous = annotations.get(REDIS_PREFIX_ANNOTATION)
    if previous == current:
        return None
    before = (
        f"'{previous}:'" if previous else "no prefix, deployed by an earlier version"
    )
    return (
        f"Redis keys of this environment now start with '{current}:' (before: "
        f"{before}). Celery tasks still queued under the old prefix are not picked "
        "up, caches and sessions start empty (users sign in again), and event bus "
        "consumers start on new topics. To drain the queues first, deploy with the "
        "old REDIS_KEY_PREFIX, stop the LMS and CMS, let the workers finish, then "
        "deploy again."
    )
