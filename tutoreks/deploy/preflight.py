"""``tutor eks check``: the preflight a deploy job runs before migrations.

Each check has its own timeout and they run concurrently. A detail never holds a
Secret value: details name settings (``MYSQL_HOST``), not their values, and every
value the Secrets provided is also scrubbed from messages that servers return.
"""

from __future__ import annotations

import concurrent.futures
import typing as t
from dataclasses import dataclass

from ..exceptions import EksError

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
    import importlib

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
    from .pods import Scrubber

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


# --- the checks ---------------------------------------------------------------


def mysql(config: dict[str, t.Any]) -> Check:
    def check() -> str:
        pymysql = require("pymysql")
        host, port = str(config["MYSQL_HOST"]), int(config["MYSQL_PORT"])
        try:
            connection = pymysql.connect(
                host=host,
                port=port,
                user=str(config["MYSQL_ROOT_USERNAME"]),
                password=str(config["MYSQL_ROOT_PASSWORD"]),
                connect_timeout=TIMEOUT,
                read_timeout=TIMEOUT,
                write_timeout=TIMEOUT,
            )
        except pymysql.err.OperationalError as e:
            raise EksError(
                f"{host}:{port}: {e.args[1] if len(e.args) > 1 else e}"
            ) from e
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                row = cursor.fetchone()
            version = str(row[0]) if row else "unknown"
        finally:
            connection.close()
        flavour = "MariaDB" if "mariadb" in version.lower() else "MySQL"
        detail = f"root credentials accepted, {flavour} {version.split('-')[0]}"
        if flavour != "MySQL" or not version.startswith(WANTED_MYSQL):
            detail += f" (Tutor wants MySQL {WANTED_MYSQL})"
        return detail

    return check


def redis(config: dict[str, t.Any]) -> Check:
    def check() -> str:
        redis_client = require("redis")
        host, port = str(config["REDIS_HOST"]), int(config["REDIS_PORT"])
        password = config.get("REDIS_PASSWORD") or None
        client = redis_client.Redis(
            host=host,
            port=port,
            username=config.get("REDIS_USERNAME") or None,
            password=password,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
        )
        try:
            client.ping()
        except redis_client.AuthenticationError as e:
            raise EksError(f"{host}:{port}: AUTH refused: {e}") from e
        except redis_client.TimeoutError as e:
            raise EksError(f"{host}:{port}: no answer within {TIMEOUT:g} s") from e
        except redis_client.ConnectionError as e:
            refused = "refused" in str(e).lower()
            raise EksError(
                f"{host}:{port}: {'connection refused' if refused else e}"
            ) from e
        except redis_client.RedisError as e:
            raise EksError(f"{host}:{port}: {e}") from e
        finally:
            client.close()
        return f"{host}:{port}: PING answered PONG" + (
            " after AUTH" if password else " (no password)"
        )

    return check


def mongodb(config: dict[str, t.Any]) -> Check:
    def check() -> str:
        pymongo = require("pymongo")
        host, port = str(config["MONGODB_HOST"]), int(config["MONGODB_PORT"])
        client: t.Any = pymongo.MongoClient(
            host=host,
            port=port,
            username=config.get("MONGODB_USERNAME") or None,
            password=config.get("MONGODB_PASSWORD") or None,
            authSource=config.get("MONGODB_AUTH_SOURCE") or "admin",
            tls=bool(config.get("MONGODB_USE_SSL")),
            serverSelectionTimeoutMS=int(TIMEOUT * 1000),
            connectTimeoutMS=int(TIMEOUT * 1000),
        )
        try:
            client.admin.command("ping")
        except Exception as e:
            raise EksError(f"MONGODB_HOST:MONGODB_PORT: {e}") from e
        finally:
            client.close()
        return "ping answered"

    return check


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


def checks_for(config: dict[str, t.Any], kube: Kube) -> list[tuple[str, Check]]:
    """The checks that apply to this environment's configuration."""
    from .. import kube as k

    namespace = str(config["K8S_NAMESPACE"])
    checks: list[tuple[str, Check]] = [
        (
            "namespace",
            kubernetes_object(kube, k.NAMESPACES, namespace, f"namespace {namespace}"),
        ),
    ]
    if config["EKS_EDGE"] == "ingress":
        ingress_class = str(config["EKS_INGRESS_CLASS"])
        checks.append(
            (
                "ingressclass",
                kubernetes_object(
                    kube,
                    k.INGRESS_CLASSES,
                    ingress_class,
                    f"IngressClass {ingress_class}",
                ),
            )
        )
        if config["ENABLE_HTTPS"]:
            kinds = [
                "certificates",
                "clusterissuers"
                if config["EKS_ISSUER_KIND"] == "ClusterIssuer"
                else "issuers",
            ]
            for kind in kinds:
                crd = f"{kind}.cert-manager.io"
                checks.append(
                    (f"crd {crd}", kubernetes_object(kube, k.CRDS, crd, f"CRD {crd}"))
                )
    if config.get("RUN_MYSQL") is False:
        checks.append(("mysql", mysql(config)))
    if config.get("RUN_REDIS") is False:
        checks.append(("redis", redis(config)))
    if config.get("RUN_MONGODB") is False:
        checks.append(("mongodb", mongodb(config)))
    if config.get("S3_STORAGE_BUCKET"):
        checks.append(("s3", s3(config)))
    return checks


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
