"""``tutor eks check``: the preflight a deploy job runs before migrations.

Each check has its own timeout and they run concurrently. A detail never holds a
Secret value: details name settings (``MYSQL_HOST``), not their values, and every
value the Secrets provided is also scrubbed from messages that servers return.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import ssl
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .. import kube as k
from ..config.masking import Scrubber
from ..exceptions import EksError
from ..render import services
from . import edge

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..kube import Kube, Resource

TIMEOUT = 5.0
WANTED_MYSQL = "8.4"


@dataclass
class Result:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, t.Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


Check = t.Callable[[], str]  # returns the detail; raises on failure


def require(module: str) -> t.Any:
    """A backing service's client, or an error that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise EksError(
            f"{module} is not installed: pip install 'tutor-contrib-eks[check]'"
        ) from e


def run(
    checks: list[tuple[str, Check]], secret_values: t.Iterable[str] = ()
) -> list[Result]:
    """Run every check concurrently; a failure is any exception, its message the detail."""
    scrub = Scrubber(secret_values, shortest=3)

    def clean(text: str) -> str:
        return scrub(text, limit=None)

    def one(item: tuple[str, Check]) -> Result:
        name, check = item
        try:
            return Result(name, True, clean(check()))
        except Exception as e:
            return Result(name, False, clean(str(e) or type(e).__name__))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
        return list(pool.map(one, checks))


# --- TLS -----------------------------------------------------------------------


def flag(config: dict[str, t.Any], key: str, default: bool = False) -> bool:
    """A boolean setting, as the settings patch reads it ("true" text too)."""
    return services.flag(config, key, default)


def check_hostname(config: dict[str, t.Any]) -> bool:
    return flag(config, "EKS_TLS_CHECK_HOSTNAME", True)


def tls_context(config: dict[str, t.Any], ca_bundle: Path | None) -> ssl.SSLContext:
    """What the pods verify with: the chain always, against the environment's CA
    bundle or else the system's trust store; the host name unless
    EKS_TLS_CHECK_HOSTNAME is false."""
    context = ssl.create_default_context(
        cafile=str(ca_bundle) if ca_bundle is not None else None
    )
    context.check_hostname = check_hostname(config)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def tls_error(error: BaseException) -> ssl.SSLError | None:
    """The TLS failure behind a client's error: its cause, context, or (PyMySQL)
    ``original_exception``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = (
            getattr(current, "original_exception", None)
            or current.__cause__
            or current.__context__
        )
    return None


def describe_tls(error: ssl.SSLError, ca_bundle: Path | None) -> str:
    """``certificate verify failed: <OpenSSL's reason>`` and what was trusted."""
    trusted = f"the CA bundle {ca_bundle.name}" if ca_bundle else "the system's CAs"
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or error.reason or str(error)
        hint = " (EKS_TLS_CHECK_HOSTNAME)" if "mismatch" in str(reason) else ""
        return f"certificate verify failed: {reason}{hint}, checked against {trusted}"
    return f"TLS handshake failed: {error.reason or error}"


# --- the checks ---------------------------------------------------------------


def mysql(config: dict[str, t.Any], ca_bundle: Path | None = None) -> Check:
    """Root's credentials, over TLS when MYSQL_USE_SSL, and the server's version."""

    def check() -> str:
        use_tls = flag(config, "MYSQL_USE_SSL")
        connection = mysql_connect(config, ca_bundle, use_tls)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                row = cursor.fetchone()
            version = str(row[0]) if row else "unknown"
        finally:
            connection.close()
        flavour = "MariaDB" if "mariadb" in version.lower() else "MySQL"
        over = "over TLS" if use_tls else "over a plain connection"
        detail = f"root credentials accepted {over}, {flavour} {version.split('-')[0]}"
        if flavour != "MySQL" or not version.startswith(WANTED_MYSQL):
            detail += f" (Tutor wants MySQL {WANTED_MYSQL})"
        return detail

    return check


#: require_secure_transport refusing a plain connection: MySQL's code (MariaDB
#: answers ACCESS_DENIED).
INSECURE_TRANSPORT = 3159
ACCESS_DENIED = 1045
SSL_UNSUPPORTED = 2026


def mysql_connect(
    config: dict[str, t.Any], ca_bundle: Path | None, use_tls: bool
) -> t.Any:
    """A PyMySQL connection as root; failures become an EksError that says why."""
    pymysql = require("pymysql")
    host, port = str(config["MYSQL_HOST"]), int(config["MYSQL_PORT"])
    try:
        return mysql_open(config, tls_context(config, ca_bundle) if use_tls else None)
    except pymysql.err.OperationalError as e:
        raise EksError(
            f"{host}:{port}: {mysql_reason(e, config, ca_bundle, use_tls)}"
        ) from e


def mysql_open(config: dict[str, t.Any], context: ssl.SSLContext | None) -> t.Any:
    """Connect as root: over TLS with ``context``, else plain (PyMySQL would
    otherwise try TLS without verifying it)."""
    pymysql = require("pymysql")
    return pymysql.connect(
        host=str(config["MYSQL_HOST"]),
        port=int(config["MYSQL_PORT"]),
        user=str(config["MYSQL_ROOT_USERNAME"]),
        password=str(config["MYSQL_ROOT_PASSWORD"]),
        connect_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
        write_timeout=TIMEOUT,
        **({"ssl": context} if context else {"ssl_disabled": True}),
    )


def mysql_reason(
    error: Exception, config: dict[str, t.Any], ca_bundle: Path | None, use_tls: bool
) -> str:
    code = error.args[0] if error.args else None
    message = str(error.args[1]) if len(error.args) > 1 else str(error)
    failed_tls = tls_error(error)
    if failed_tls is not None:
        return describe_tls(failed_tls, ca_bundle)
    if code == SSL_UNSUPPORTED:
        return f"the server does not offer TLS (MYSQL_USE_SSL is true): {message}"
    if not use_tls and code in (INSECURE_TRANSPORT, ACCESS_DENIED):
        return mysql_plain_refused(code, message, config, ca_bundle)
    return message


def mysql_plain_refused(
    code: int, message: str, config: dict[str, t.Any], ca_bundle: Path | None
) -> str:
    """A plain connection refused: is it require_secure_transport? MySQL says so
    (3159); MariaDB answers "access denied", as for a wrong password."""
    over_tls = (
        "accepted" if code == INSECURE_TRANSPORT else mysql_over_tls(config, ca_bundle)
    )
    if over_tls == "accepted":
        return (
            "TLS required (MYSQL_USE_SSL is false): the server refuses plain "
            f"connections ({message})"
        )
    if over_tls == "unverified":
        return (
            f"{message} (the server offers TLS, its certificate unverified: if it "
            "requires TLS, set MYSQL_USE_SSL and give the environment its CA bundle)"
        )
    return message


def mysql_over_tls(config: dict[str, t.Any], ca_bundle: Path | None) -> str:
    """After MariaDB's "access denied" to a plain connection, which it also
    answers for require_secure_transport: "accepted" when the same credentials
    pass over verified TLS, "unverified" when the server's certificate does not
    verify (no credentials were sent), else "refused"."""
    try:
        mysql_open(config, tls_context(config, ca_bundle)).close()
    except Exception as e:
        return (
            "unverified"
            if isinstance(tls_error(e), ssl.SSLCertVerificationError)
            else "refused"
        )
    return "accepted"


def redis(config: dict[str, t.Any], ca_bundle: Path | None = None) -> Check:
    """PING, with TLS and AUTH as the pods use them, then a write under the
    environment's key prefix (REDIS_KEY_PREFIX), removed at once."""

    def check() -> str:
        redis_client = require("redis")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        use_tls = flag(config, "REDIS_USE_SSL")
        client = redis_client.Redis(
            **redis_options(config, ca_bundle, use_tls),
            # One attempt: a wrong token or certificate is not worth three more.
            retry=Retry(NoBackoff(), 0),
        )
        where = f"{config['REDIS_HOST']}:{config['REDIS_PORT']}"
        try:
            client.ping()
            written = redis_write(client, redis_client, config, where)
        except redis_client.RedisError as e:
            reason = redis_reason(e, redis_client, config, ca_bundle, use_tls)
            raise EksError(f"{where}: {reason}") from e
        finally:
            client.close()
        over = "TLS" if use_tls else "plain TCP"
        return (
            f"{where} over {over}: PING answered PONG {redis_auth(config)}; {written}"
        )

    return check


def redis_credentials(config: dict[str, t.Any]) -> tuple[str | None, str | None]:
    """(username, password): a password alone is an AUTH token; the user name
    is sent only with a password (an ACL user)."""
    password = config.get("REDIS_PASSWORD") or None
    username = config.get("REDIS_USERNAME") or None
    return (str(username) if username and password else None), (
        str(password) if password else None
    )


def redis_auth(config: dict[str, t.Any]) -> str:
    username, password = redis_credentials(config)
    if username:
        return "after AUTH as REDIS_USERNAME"
    return "after AUTH (token)" if password else "(no password)"


def redis_options(
    config: dict[str, t.Any], ca_bundle: Path | None, use_tls: bool
) -> dict[str, t.Any]:
    username, password = redis_credentials(config)
    options: dict[str, t.Any] = {
        "host": str(config["REDIS_HOST"]),
        "port": int(config["REDIS_PORT"]),
        "username": username,
        "password": password,
        "socket_timeout": TIMEOUT,
        "socket_connect_timeout": TIMEOUT,
    }
    if use_tls:
        options.update(
            ssl=True,
            ssl_cert_reqs="required",
            ssl_check_hostname=check_hostname(config),
        )
        if ca_bundle is not None:
            options["ssl_ca_certs"] = str(ca_bundle)
    return options


def redis_prefix(config: dict[str, t.Any]) -> str:
    """REDIS_KEY_PREFIX (by default the namespace), checked as the settings
    patch checks it."""
    return services.prefix(config)


def redis_write(
    client: t.Any, redis_client: t.Any, config: dict[str, t.Any], where: str
) -> str:
    """SET and DEL one key under the prefix: an ACL user limited to ``~prefix:*``
    passes, one that may not write there fails."""
    prefix = redis_prefix(config)
    key = f"{prefix}:tutor-eks-check"
    try:
        client.set(key, "preflight", ex=30)
        client.delete(key)
    except redis_client.ResponseError as e:
        raise EksError(
            f"{where}: may not write keys under the prefix '{prefix}:' "
            f"(REDIS_KEY_PREFIX), SET {key} refused: {e}"
        ) from e
    return f"keys under the prefix '{prefix}:' writable"


def redis_reason(
    error: Exception,
    redis_client: t.Any,
    config: dict[str, t.Any],
    ca_bundle: Path | None,
    use_tls: bool,
) -> str:
    """The words a user searches for: certificate verify failed, TLS required,
    AUTH refused, connection refused, no answer."""
    failed_tls = tls_error(error)
    if failed_tls is not None:
        return describe_tls(failed_tls, ca_bundle)
    text = str(error)
    if isinstance(error, redis_client.AuthenticationError):
        if not redis_credentials(config)[1]:
            return f"the server wants AUTH: REDIS_PASSWORD is empty ({text})"
        return f"AUTH refused (WRONGPASS): {text}"
    if isinstance(error, redis_client.TimeoutError):
        unanswered = " (REDIS_USE_SSL is true: is the server's port a TLS one?)"
        return f"no answer within {TIMEOUT:g} s" + (unanswered if use_tls else "")
    if isinstance(error, redis_client.ConnectionError):
        lowered = text.lower()
        if "refused" in lowered:
            return "connection refused"
        if not use_tls and any(w in lowered for w in ("reset", "closed", "broken")):
            return (
                "the server closed the connection: TLS required? "
                "(REDIS_USE_SSL is false)"
            )
    return text


def mongodb(config: dict[str, t.Any], ca_bundle: Path | None = None) -> Check:
    def check() -> str:
        pymongo = require("pymongo")
        client: t.Any = pymongo.MongoClient(**mongodb_options(config, ca_bundle))
        try:
            client.admin.command("ping")
        except Exception as e:
            raise EksError(f"MONGODB_HOST:MONGODB_PORT: {e}") from e
        finally:
            client.close()
        return "ping answered" + (" over TLS" if mongodb_tls(config) else "")

    return check


def mongodb_tls(config: dict[str, t.Any]) -> bool:
    return flag(config, "MONGODB_USE_SSL")


def mongodb_options(
    config: dict[str, t.Any], ca_bundle: Path | None
) -> dict[str, t.Any]:
    """PyMongo's options, TLS verified as for MySQL and Redis."""
    tls = mongodb_tls(config)
    options: dict[str, t.Any] = {
        "host": str(config["MONGODB_HOST"]),
        "port": int(config["MONGODB_PORT"]),
        "username": config.get("MONGODB_USERNAME") or None,
        "password": config.get("MONGODB_PASSWORD") or None,
        "authSource": config.get("MONGODB_AUTH_SOURCE") or "admin",
        "tls": tls,
        "retryWrites": flag(config, "MONGODB_RETRY_WRITES", True),
        "serverSelectionTimeoutMS": int(TIMEOUT * 1000),
        "connectTimeoutMS": int(TIMEOUT * 1000),
    }
    if tls:
        options["tlsAllowInvalidHostnames"] = not check_hostname(config)
        if ca_bundle is not None:
            options["tlsCAFile"] = str(ca_bundle)
    return options


def s3(config: dict[str, t.Any]) -> Check:
    def check() -> str:
        boto3 = require("boto3")
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = str(config["S3_STORAGE_BUCKET"])
        key = config.get("OPENEDX_AWS_ACCESS_KEY") or None
        client = boto3.client(
            "s3",
            region_name=config.get("S3_REGION") or None,
            endpoint_url=config.get("S3_ENDPOINT_URL") or None,
            aws_access_key_id=key,
            aws_secret_access_key=(config.get("OPENEDX_AWS_SECRET_ACCESS_KEY") or None)
            if key
            else None,
            config=BotoConfig(
                connect_timeout=TIMEOUT,
                read_timeout=TIMEOUT,
                retries={"max_attempts": 2},
            ),
        )
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            meaning = {
                "404": "does not exist",
                "NoSuchBucket": "does not exist",
                "403": "access denied",
            }.get(code, code)
            raise EksError(f"S3_STORAGE_BUCKET: the bucket {meaning}") from e
        except BotoCoreError as e:
            raise EksError(f"S3_STORAGE_BUCKET: {e}") from e
        who = (
            "OPENEDX_AWS_ACCESS_KEY"
            if key
            else "the ambient AWS credentials (IRSA role)"
        )
        return f"the bucket of S3_STORAGE_BUCKET is reachable with {who}"

    return check


def kubernetes_object(kube: Kube, resource: Resource, name: str, what: str) -> Check:
    def check() -> str:
        if kube.get(resource, name) is None:
            raise EksError(f"{what} does not exist")
        return f"{what} exists"

    return check


def checks_for(
    config: dict[str, t.Any], kube: Kube, ca_bundle: Path | None = None
) -> list[tuple[str, Check]]:
    """The checks that apply to this environment's configuration; ``ca_bundle``:
    the environment's CA bundle (PEM), else TLS trusts the system's CAs."""
    namespace = str(config["K8S_NAMESPACE"])
    checks: list[tuple[str, Check]] = [
        (
            "namespace",
            kubernetes_object(kube, k.NAMESPACES, namespace, f"namespace {namespace}"),
        ),
    ]
    checks += edge.checks(config, kube)
    if config.get("RUN_MYSQL") is False:
        checks.append(("mysql", mysql(config, ca_bundle)))
    if config.get("RUN_REDIS") is False:
        checks.append(("redis", redis(config, ca_bundle)))
    if config.get("RUN_MONGODB") is False:
        checks.append(("mongodb", mongodb(config, ca_bundle)))
    if config.get("S3_STORAGE_BUCKET"):
        checks.append(("s3", s3(config)))
    scaled = autoscaled(config)
    if scaled:
        checks.append(("metrics api", metrics_api(kube, scaled)))
    return checks


METRICS_API = "v1beta1.metrics.k8s.io"


def autoscaled(config: dict[str, t.Any]) -> list[str]:
    """The Deployments EKS_WORKLOADS gives an autoscaler."""
    setting = config.get("EKS_WORKLOADS")
    if not isinstance(setting, dict):
        return []
    return sorted(
        str(name)
        for name, values in setting.items()
        if isinstance(values, dict) and values.get("autoscaling")
    )


def metrics_api(kube: Kube, scaled: list[str]) -> Check:
    """A warning, not a failure: the deploy works, but its autoscalers cannot
    scale until the cluster serves the resource metrics API (metrics-server)."""

    def check() -> str:
        service = kube.get(k.API_SERVICES, METRICS_API)
        available = any(
            c.get("type") == "Available" and c.get("status") == "True"
            for c in ((service or {}).get("status") or {}).get("conditions") or []
        )
        if available:
            return f"{METRICS_API} is served: the autoscalers of {', '.join(scaled)} can scale"
        return (
            f"WARNING: {METRICS_API} is {'not available' if service else 'not served'}: "
            f"the autoscalers of {', '.join(scaled)} cannot scale (install metrics-server)"
        )

    return check


def secrets_result(resolution: Resolution) -> list[Result]:
    """The first row: what the Secrets provided."""
    provided = resolution.secrets
    if provided is None:
        return [Result("secrets", True, "EKS_SECRETS is empty: no Secret to read")]
    absent = (
        f"; optional, absent: {', '.join(provided.missing_optional)}"
        if provided.missing_optional
        else ""
    )
    return [
        Result(
            "secrets",
            True,
            f"{len(provided.values)} keys from {', '.join(provided.found) or 'no Secret'} "
            f"in namespace {provided.namespace}{absent}",
        )
    ]
