"""The Kubernetes Secrets of the cookiecutter-openedx-devops Terraform, as test data.

Operators migrating from cookiecutter-openedx-devops
(github.com/cookiecutter-openedx/cookiecutter-openedx-devops, template as of its
2024-09 state, Tutor 17 era) already have these Secrets in each environment's
namespace. Their Terraform lives under
``{{cookiecutter.github_repo_name}}/terraform/environments/modules/<module>/``;
the path in each builder's docstring is relative to ``terraform/environments/modules``.

What this module reproduces exactly is the *shape*: every Secret that Terraform
creates in the Open edX namespace, with its data keys spelled as Terraform spells
them, in Terraform's order, and with the kind of value Terraform puts there
(strings everywhere: Terraform turns ``587`` and ``false`` into ``"587"`` and
``"false"``; empty strings where Terraform writes ``""``; a multi-line PEM for the
JWT key). The values themselves are fake and random on every call, with the
character sets Terraform uses, so tests meet the awkward characters too (Terraform's
``random_password`` for database users uses ``override_special = "_%@"``).

Which Secrets exist depends on answers given to cookiecutter when the repository
was generated: :data:`MODULE_SWITCHES` and :data:`CONDITIONAL_SECRETS` say which.
:func:`stack_secrets` returns all of them (every switch on).

Tutor's view of the keys: :data:`TUTOR22_KEYS` splits each Secret's keys into the
ones Tutor 22 core defines (``tutor/templates/config/defaults.yml`` and
``base.yml`` of tutor 22.0.3) and the ones it does not know, and
:data:`TUTOR_RENAMES` holds the one key that names a Tutor setting differently.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: Fake DNS zone standing in for ``cookiecutter.global_root_domain``.
ROOT_DOMAIN = "stack.internal"
#: Fake ``services_subdomain`` (``<global_services_subdomain>.<root_domain>``):
#: the shared MySQL and MongoDB servers of the "stack" are named in it.
SERVICES_DOMAIN = f"service.{ROOT_DOMAIN}"
#: Stands in for ``cookiecutter.global_aws_region``.
AWS_REGION = "us-east-2"

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class StackNames:
    """The names Terraform derives from the environment (``env.hcl``, ``global.hcl``).

    The stack's namespace is ``<platform_name>-<platform_region>-<environment>``
    (``yourschool-global-prod`` with cookiecutter's defaults).
    """

    namespace: str
    platform_name: str
    environment: str

    @property
    def db_prefix(self) -> str:
        """``<platform_name>_<environment>`` without dots and dashes, as env.hcl builds it."""
        raw = f"{self.platform_name}_{self.environment}"
        return raw.replace(".", "").replace("-", "")

    @property
    def environment_domain(self) -> str:
        """``<environment_subdomain>.<root_domain>``; the LMS host in their stack."""
        return f"{self.environment}.{ROOT_DOMAIN}"

    def db_name(self, suffix: str) -> str:
        """A database name: Terraform keeps the last 64 characters."""
        return f"{self.db_prefix}_{suffix}"[-64:]

    def db_user(self, suffix: str) -> str:
        """A database user name: Terraform keeps the last 32 characters."""
        return f"{self.db_prefix}_{suffix}"[-32:]


def stack_names(namespace_hint: str) -> StackNames:
    """Split a namespace such as ``yourschool-global-prod`` the way the stack built it.

    The first dash-separated part is the platform name and the last one the
    environment; a namespace without a dash is taken as the environment of a
    platform called ``yourschool`` (cookiecutter's default).
    """
    if len(namespace_hint) > 63 or not _NAMESPACE.fullmatch(namespace_hint):
        raise ValueError(
            f"{namespace_hint!r} is not a Kubernetes namespace name (RFC 1123 label)"
        )
    parts = namespace_hint.split("-")
    platform = parts[0] if len(parts) > 1 else "yourschool"
    return StackNames(
        namespace=namespace_hint, platform_name=platform, environment=parts[-1]
    )


# ---------------------------------------------------------------------------
# Fake values with Terraform's character sets
# ---------------------------------------------------------------------------


def terraform_password(length: int, special: str = "") -> str:
    """A ``random_password`` look-alike: letters and digits, plus ``special``.

    Built from :func:`secrets.token_urlsafe`; every character of ``special`` is
    included once, so a test always meets each of them (Terraform may or may not
    draw one). ``special=""`` is ``special = false``: letters and digits only.
    """
    alphanumeric = "".join(
        c
        for c in secrets.token_urlsafe(2 * length)
        if c in string.ascii_letters + string.digits
    )
    body = alphanumeric[: length - len(special)]
    while len(body) < length - len(special):
        body += secrets.choice(string.ascii_letters + string.digits)
    chars = list(body + special)
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def aws_access_key_id() -> str:
    """An IAM access key id: ``AKIA`` and 16 upper-case letters or digits."""
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def aws_secret_access_key() -> str:
    """An IAM secret access key: 40 characters of base64 (``+`` and ``/`` included)."""
    return base64.b64encode(secrets.token_bytes(30)).decode("ascii")


def ses_smtp_password() -> str:
    """What ``aws_iam_access_key.ses_smtp_password_v4`` looks like: base64 of a
    version byte (4) and a 32-byte HMAC, 44 characters, may hold ``+`` and ``/``."""
    return base64.b64encode(b"\x04" + secrets.token_bytes(32)).decode("ascii")


def rsa_private_key_pem(bits: int = 2048) -> str:
    """A fresh RSA key as ``tls_private_key.private_key_pem`` gives it: PKCS#1
    (``-----BEGIN RSA PRIVATE KEY-----``), 64-column lines, a final newline."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.TraditionalOpenSSL,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return pem.decode("ascii")


# ---------------------------------------------------------------------------
# One builder per Secret; the docstring is the Secret's documentation.
# ---------------------------------------------------------------------------

SecretBuilder = Callable[[StackNames], dict[str, str]]


@dataclass(frozen=True)
class _Shared:
    """Values the stack copies from one shared Secret into several environment ones."""

    mysql_host: str
    mysql_port: str
    mongodb_host: str
    mongodb_port: str


def _shared() -> _Shared:
    return _Shared(
        mysql_host=f"mysql.{SERVICES_DOMAIN}",
        mysql_port="3306",
        mongodb_host=f"mongodb.{SERVICES_DOMAIN}",
        mongodb_port="27017",
    )


def mysql_root(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-root``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.mysql_root``).

    A copy, per environment namespace, of the shared stack's ``mysql-root`` (read
    with a ``data "kubernetes_secret"`` from the shared namespace, created by
    ``terraform/stacks/modules/mysql/kubernetes.tf``):

    - ``MYSQL_ROOT_USERNAME``: the RDS master user (``root`` in their terragrunt.hcl)
    - ``MYSQL_ROOT_PASSWORD``: the RDS master password, ``random_password`` of 16
      with ``override_special = "_%@"``
    - ``MYSQL_HOST``: ``mysql.<services_subdomain>``, a Route53 name for the RDS
      instance, shared by every environment of the stack
    - ``MYSQL_PORT``: the RDS port, ``"3306"``
    """
    shared = _shared()
    return {
        "MYSQL_ROOT_USERNAME": "root",
        "MYSQL_ROOT_PASSWORD": terraform_password(16, "_%@"),
        "MYSQL_HOST": shared.mysql_host,
        "MYSQL_PORT": shared.mysql_port,
    }


def _mysql_service(prefix: str, suffix: str) -> SecretBuilder:
    def build(names: StackNames) -> dict[str, str]:
        shared = _shared()
        return {
            f"{prefix}_MYSQL_DATABASE": names.db_name(suffix),
            f"{prefix}_MYSQL_USERNAME": names.db_user(suffix),
            f"{prefix}_MYSQL_PASSWORD": terraform_password(16, "_%@"),
            "MYSQL_HOST": shared.mysql_host,
            "MYSQL_PORT": shared.mysql_port,
        }

    return build


def mysql_openedx(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-openedx``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.openedx``).

    The LMS/CMS database and its user (Terraform creates neither in MySQL: Tutor's
    MySQL init Job does, with the root credentials):

    - ``OPENEDX_MYSQL_DATABASE``: ``<db_prefix>_edx``, last 64 characters
    - ``OPENEDX_MYSQL_USERNAME``: ``<db_prefix>_edx``, last 32 characters
    - ``OPENEDX_MYSQL_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MYSQL_HOST``, ``MYSQL_PORT``: the same values as in ``mysql-root`` again
    """
    return _mysql_service("OPENEDX", "edx")(names)


def mysql_discovery(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-discovery``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.discovery``).

    Only when cookiecutter's ``ci_deploy_install_discovery_service`` is ``Y`` (the
    default). For the tutor-discovery plugin:

    - ``DISCOVERY_MYSQL_DATABASE``: ``<db_prefix>_disc`` (last 64 characters)
    - ``DISCOVERY_MYSQL_USERNAME``: ``<db_prefix>_disc`` (last 32 characters)
    - ``DISCOVERY_MYSQL_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MYSQL_HOST``, ``MYSQL_PORT``: as in ``mysql-root``
    """
    return _mysql_service("DISCOVERY", "disc")(names)


def mysql_ecommerce(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-ecommerce``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.ecommerce``).

    Always created (with the mysql module). For the tutor-ecommerce plugin:

    - ``ECOMMERCE_MYSQL_DATABASE``: ``<db_prefix>_ecom`` (last 64 characters)
    - ``ECOMMERCE_MYSQL_USERNAME``: ``<db_prefix>_ecom`` (last 32 characters)
    - ``ECOMMERCE_MYSQL_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MYSQL_HOST``, ``MYSQL_PORT``: as in ``mysql-root``
    """
    return _mysql_service("ECOMMERCE", "ecom")(names)


def mysql_notes(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-notes``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.notes``).

    Always created (with the mysql module). For the tutor-notes plugin:

    - ``NOTES_MYSQL_DATABASE``: ``<db_prefix>_notes`` (last 64 characters)
    - ``NOTES_MYSQL_USERNAME``: ``<db_prefix>_notes`` (last 32 characters)
    - ``NOTES_MYSQL_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MYSQL_HOST``, ``MYSQL_PORT``: as in ``mysql-root``
    """
    return _mysql_service("NOTES", "notes")(names)


def mysql_xqueue(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-xqueue``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.xqueue``).

    Always created (with the mysql module). For the tutor-xqueue plugin:

    - ``XQUEUE_MYSQL_DATABASE``: ``<db_prefix>_xq`` (last 64 characters)
    - ``XQUEUE_MYSQL_USERNAME``: ``<db_prefix>_xq`` (last 32 characters)
    - ``XQUEUE_MYSQL_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MYSQL_HOST``, ``MYSQL_PORT``: as in ``mysql-root``
    """
    return _mysql_service("XQUEUE", "xq")(names)


def mysql_credentials(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-credentials``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.credentials``).

    Only when ``ci_deploy_install_credentials_server`` is ``Y`` (default ``N``).
    For the tutor-credentials plugin:

    - ``CREDENTIALS_MYSQL_DATABASE``: ``<db_prefix>_cred`` (last 64 characters)
    - ``CREDENTIALS_MYSQL_USERNAME``: ``<db_prefix>_cred`` (last 32 characters)
    - ``CREDENTIALS_MYSQL_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MYSQL_HOST``, ``MYSQL_PORT``: as in ``mysql-root``
    """
    return _mysql_service("CREDENTIALS", "cred")(names)


def mysql_license_manager(names: StackNames) -> dict[str, str]:
    """Secret ``mysql-license-manager``, from ``mysql/kubernetes.tf`` (resource ``kubernetes_secret.license_manager``).

    Only when ``ci_deploy_install_license_manager_service`` is ``Y`` (default
    ``N``). For a license-manager plugin:

    - ``LICENSE_MANAGER_MYSQL_DATABASE``: ``<db_prefix>_lm`` (last 64 characters)
    - ``LICENSE_MANAGER_MYSQL_USERNAME``: ``<db_prefix>_lm`` (last 32 characters)
    - ``LICENSE_MANAGER_MYSQL_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MYSQL_HOST``, ``MYSQL_PORT``: as in ``mysql-root``
    """
    return _mysql_service("LICENSE_MANAGER", "lm")(names)


def redis(names: StackNames) -> dict[str, str]:
    """Secret ``redis``, from ``redis/kubernetes.tf`` (resource ``kubernetes_secret.environment_redis``).

    - ``REDIS_KEY_PREFIX``: the environment's subdomain (``courses`` with
      cookiecutter's defaults). Not a Tutor setting: nothing in Tutor 22 prefixes
      Redis keys with it.
    - ``REDIS_HOST``: ``redis.primary.<environment_domain>``, a Route53 CNAME
      (``redis/route53.tf``) to the shared ElastiCache primary endpoint.

    No ``REDIS_PORT``, user or password: ElastiCache without AUTH, port 6379.
    """
    return {
        "REDIS_KEY_PREFIX": names.environment,
        "REDIS_HOST": f"redis.primary.{names.environment_domain}",
    }


def mongodb_admin(names: StackNames) -> dict[str, str]:
    """Secret ``mongodb-admin``, from ``mongodb/kubernetes.tf`` (resource ``kubernetes_secret.mongodb_admin``).

    A copy of the shared stack's ``mongodb-admin`` (``terraform/stacks/modules/
    mongodb/kubernetes.tf``), the administrator of the EC2-hosted MongoDB:

    - ``MONGODB_ADMIN_USERNAME``: ``admin`` in their terragrunt.hcl
    - ``MONGODB_ADMIN_PASSWORD``: ``random_password`` of 16, specials ``_%@``
    - ``MONGODB_HOST``: ``mongodb.<services_subdomain>`` (Route53)
    - ``MONGODB_PORT``: ``"27017"``

    Their workflow reads it too (tutor-k8s-configure-mongodb) and so exports
    ``TUTOR_MONGODB_HOST``/``TUTOR_MONGODB_PORT`` twice, with the same values as
    ``mongodb-openedx``.
    """
    shared = _shared()
    return {
        "MONGODB_ADMIN_USERNAME": "admin",
        "MONGODB_ADMIN_PASSWORD": terraform_password(16, "_%@"),
        "MONGODB_HOST": shared.mongodb_host,
        "MONGODB_PORT": shared.mongodb_port,
    }


def mongodb_openedx(names: StackNames) -> dict[str, str]:
    """Secret ``mongodb-openedx``, from ``mongodb/kubernetes.tf`` (resource ``kubernetes_secret.openedx``).

    - ``MONGODB_DATABASE``: ``<db_prefix>_edx``, last 32 characters
    - ``MONGODB_HOST``, ``MONGODB_PORT``: copied from ``mongodb-admin``
    - ``MONGODB_USERNAME``, ``MONGODB_PASSWORD``: **empty strings**, meaning no
      authentication (their Terraform keeps the real ones commented out)
    - ``MONGODB_USE_SSL``: ``"false"``
    - ``MONGODB_REPLICA_SET``: empty (none)
    - ``MONGODB_AUTH_MECHANISM``: empty (driver default)
    - ``MONGODB_AUTH_SOURCE``: ``"admin"``
    - ``FORUM_MONGODB_DATABASE``: ``<db_prefix>_cs_comments``, last 32 characters
    - ``FORUM_MONGODB_USE_SSL``: ``"false"``
    - ``FORUM_MONGODB_AUTH_SOURCE``: empty
    - ``FORUM_MONGODB_AUTH_MECH``: empty (note ``_MECH``, not ``_MECHANISM``)

    The ``FORUM_MONGODB_*`` keys followed an old tutor-forum (Ruby service); the
    tutor-forum of the Python forum has no such settings (it hard-codes the
    Django setting ``FORUM_MONGODB_DATABASE = "cs_comments_service"``).
    """
    shared = _shared()
    return {
        "MONGODB_DATABASE": names.db_user("edx"),
        "MONGODB_HOST": shared.mongodb_host,
        "MONGODB_USERNAME": "",
        "MONGODB_PASSWORD": "",
        "MONGODB_PORT": shared.mongodb_port,
        "MONGODB_USE_SSL": "false",
        "MONGODB_REPLICA_SET": "",
        "MONGODB_AUTH_MECHANISM": "",
        "MONGODB_AUTH_SOURCE": "admin",
        "FORUM_MONGODB_DATABASE": names.db_user("cs_comments"),
        "FORUM_MONGODB_USE_SSL": "false",
        "FORUM_MONGODB_AUTH_SOURCE": "",
        "FORUM_MONGODB_AUTH_MECH": "",
    }


def s3_openedx_storage(names: StackNames) -> dict[str, str]:
    """Secret ``s3-openedx-storage``, from ``s3/kubernetes.tf`` (resource ``kubernetes_secret.s3``).

    The name comes from ``secret_name = "s3-openedx-storage"`` in the environment's
    ``s3_openedx_storage/terragrunt.hcl``.

    - ``OPENEDX_AWS_ACCESS_KEY``, ``OPENEDX_AWS_SECRET_ACCESS_KEY``: a static key
      of an IAM user made for the buckets (``s3/iam.tf``); no IRSA
    - ``S3_STORAGE_BUCKET``: ``<namespace>-storage``
    - ``S3_BACKUP_BUCKET``: ``<namespace>-backup`` (for their backup jobs, not
      for Open edX)
    - ``S3_REGION``: the stack's AWS region
    - ``S3_CUSTOM_DOMAIN``: ``cdn.<environment_domain>`` (their CloudFront)
    """
    return {
        "OPENEDX_AWS_ACCESS_KEY": aws_access_key_id(),
        "OPENEDX_AWS_SECRET_ACCESS_KEY": aws_secret_access_key(),
        "S3_STORAGE_BUCKET": f"{names.namespace}-storage",
        "S3_BACKUP_BUCKET": f"{names.namespace}-backup",
        "S3_REGION": AWS_REGION,
        "S3_CUSTOM_DOMAIN": f"cdn.{names.environment_domain}",
    }


def aws_ses_config(names: StackNames) -> dict[str, str]:
    """Secret ``aws-ses-config``, from ``ses/kubernetes.tf`` (resource ``kubernetes_secret.smtp_user``).

    Only when cookiecutter's ``environment_add_aws_ses`` is ``Y`` (the ses module is
    deleted otherwise). Terraform writes numbers and booleans; the Secret holds
    their strings:

    - ``SMTP_HOST``: ``email-smtp.<region>.amazonaws.com``
    - ``SMTP_PORT``: ``"587"``
    - ``SMTP_USE_SSL``: ``"false"``
    - ``SMTP_USE_TLS``: ``"true"``
    - ``SMTP_USERNAME``: the SMTP IAM user's access key id
    - ``SMTP_PASSWORD``: that key's ``ses_smtp_password_v4`` (base64: ``+``, ``/``)
    """
    return {
        "SMTP_HOST": f"email-smtp.{AWS_REGION}.amazonaws.com",
        "SMTP_PORT": "587",
        "SMTP_USE_SSL": "false",
        "SMTP_USE_TLS": "true",
        "SMTP_USERNAME": aws_access_key_id(),
        "SMTP_PASSWORD": ses_smtp_password(),
    }


def jwt(names: StackNames) -> dict[str, str]:
    """Secret ``jwt``, from ``kubernetes_secrets/jwt.tf`` (resource ``kubernetes_secret.jtw``, sic).

    - ``private_key``: a 2048-bit RSA key, ``tls_private_key.private_key_pem``:
      a **multi-line** PKCS#1 PEM ending with a newline. The only lower-case key of
      the stack, and the only one that is not named like the Tutor setting it
      feeds: it is Tutor's ``JWT_RSA_PRIVATE_KEY`` (see :data:`TUTOR_RENAMES`).
    """
    return {"private_key": rsa_private_key_pem()}


def edx_secret_key(names: StackNames) -> dict[str, str]:
    """Secret ``edx-secret-key``, from ``kubernetes_secrets/session.tf`` (resource ``kubernetes_secret.edx_secret_key``).

    - ``OPENEDX_SECRET_KEY``: Django's ``SECRET_KEY`` of the LMS and CMS,
      ``random_password`` of 24, letters and digits only
    """
    return {"OPENEDX_SECRET_KEY": terraform_password(24)}


def admin_edx(names: StackNames) -> dict[str, str]:
    """Secret ``admin-edx``, from ``kubernetes_secrets/admin_openedx.tf`` (resource ``kubernetes_secret.admin_edx``).

    The superuser their workflow creates after every deploy
    (``tutor k8s do createuser --staff --superuser``):

    - ``ADMIN_USER``: ``"admin"``
    - ``ADMIN_PASSWORD``: ``random_password`` of 16, letters and digits only
    - ``ADMIN_EMAIL``: ``admin@<root_domain>``
    """
    return {
        "ADMIN_USER": "admin",
        "ADMIN_PASSWORD": terraform_password(16),
        "ADMIN_EMAIL": f"admin@{ROOT_DOMAIN}",
    }


def ecommerce_config(names: StackNames) -> dict[str, str]:
    """Secret ``ecommerce-config``, from ``kubernetes_secrets/ecommerce.tf`` (resource ``kubernetes_secret.ecommerce_config``).

    A placeholder for operators to add ecommerce keys to by hand; their
    tutor-plugin-enable-ecommerce action exports it as ``TUTOR_*`` variables:

    - ``ECOMMERCE_ENABLE_IDENTITY_VERIFICATION``: ``"false"`` (a Terraform boolean)
    """
    return {"ECOMMERCE_ENABLE_IDENTITY_VERIFICATION": "false"}


def license_manager_oauth(names: StackNames) -> dict[str, str]:
    """Secret ``license-manager-oauth``, from ``kubernetes_secrets/license_manager.tf`` (resource ``kubernetes_secret.lm_oauth``).

    OAuth2 client ids and secrets for the License Manager service (settings of
    the tutor-contrib-license-manager plugin); created whatever the cookiecutter
    answers, read by their tutor-enable-plugin-license-manager action:

    - ``LICENSE_MANAGER_OAUTH2_KEY_DEV``: ``"license-manager-key-dev"``
    - ``LICENSE_MANAGER_OAUTH2_SECRET_DEV``: ``random_password`` of 16, alphanumeric
    - ``LICENSE_MANAGER_OAUTH2_KEY``: ``"license-manager-key"``
    - ``LICENSE_MANAGER_OAUTH2_SECRET``: idem
    - ``LICENSE_MANAGER_OAUTH2_KEY_SSO_DEV``: ``"license-manager-key-sso-dev"``
    - ``LICENSE_MANAGER_OAUTH2_SECRET_SSO_DEV``: idem
    - ``LICENSE_MANAGER_OAUTH2_KEY_SSO``: ``"license-manager-key-sso"``
    - ``LICENSE_MANAGER_OAUTH2_SECRET_SSO``: idem
    """
    return {
        "LICENSE_MANAGER_OAUTH2_KEY_DEV": "license-manager-key-dev",
        "LICENSE_MANAGER_OAUTH2_SECRET_DEV": terraform_password(16),
        "LICENSE_MANAGER_OAUTH2_KEY": "license-manager-key",
        "LICENSE_MANAGER_OAUTH2_SECRET": terraform_password(16),
        "LICENSE_MANAGER_OAUTH2_KEY_SSO_DEV": "license-manager-key-sso-dev",
        "LICENSE_MANAGER_OAUTH2_SECRET_SSO_DEV": terraform_password(16),
        "LICENSE_MANAGER_OAUTH2_KEY_SSO": "license-manager-key-sso",
        "LICENSE_MANAGER_OAUTH2_SECRET_SSO": terraform_password(16),
    }


def cookiecutter(names: StackNames) -> dict[str, str]:
    """Secret ``cookiecutter``, from ``kubernetes/main.tf`` (resource ``kubernetes_secret.cookiecutter``).

    Bookkeeping, not a credential: the module that creates the namespace also
    stores the AWS tags of the environment there.

    - ``tags``: a JSON object (``jsonencode(local.tags)``) of ``cookiecutter/...``
      tag names to strings
    """
    tags = {
        "cookiecutter/environment": names.environment,
        "cookiecutter/environment_namespace": names.namespace,
        "cookiecutter/environment_domain": names.environment_domain,
        "cookiecutter/module/source": "openedx_devops/terraform/environments/modules/kubernetes",
        "cookiecutter/global/root_domain": ROOT_DOMAIN,
    }
    return {"tags": json.dumps(tags, separators=(",", ":"), sort_keys=True)}


#: Every Secret the stack's Terraform creates in an environment's namespace, in the
#: order of their modules, with the function that fakes its data.
SECRET_BUILDERS: dict[str, SecretBuilder] = {
    "cookiecutter": cookiecutter,
    "mysql-root": mysql_root,
    "mysql-openedx": mysql_openedx,
    "mysql-discovery": mysql_discovery,
    "mysql-ecommerce": mysql_ecommerce,
    "mysql-notes": mysql_notes,
    "mysql-xqueue": mysql_xqueue,
    "mysql-credentials": mysql_credentials,
    "mysql-license-manager": mysql_license_manager,
    "redis": redis,
    "mongodb-admin": mongodb_admin,
    "mongodb-openedx": mongodb_openedx,
    "s3-openedx-storage": s3_openedx_storage,
    "aws-ses-config": aws_ses_config,
    "jwt": jwt,
    "edx-secret-key": edx_secret_key,
    "admin-edx": admin_edx,
    "ecommerce-config": ecommerce_config,
    "license-manager-oauth": license_manager_oauth,
}

#: The Terraform file of each Secret, relative to ``terraform/environments/modules``.
TERRAFORM_FILES: dict[str, str] = {
    "cookiecutter": "kubernetes/main.tf",
    "mysql-root": "mysql/kubernetes.tf",
    "mysql-openedx": "mysql/kubernetes.tf",
    "mysql-discovery": "mysql/kubernetes.tf",
    "mysql-ecommerce": "mysql/kubernetes.tf",
    "mysql-notes": "mysql/kubernetes.tf",
    "mysql-xqueue": "mysql/kubernetes.tf",
    "mysql-credentials": "mysql/kubernetes.tf",
    "mysql-license-manager": "mysql/kubernetes.tf",
    "redis": "redis/kubernetes.tf",
    "mongodb-admin": "mongodb/kubernetes.tf",
    "mongodb-openedx": "mongodb/kubernetes.tf",
    "s3-openedx-storage": "s3/kubernetes.tf",
    "aws-ses-config": "ses/kubernetes.tf",
    "jwt": "kubernetes_secrets/jwt.tf",
    "edx-secret-key": "kubernetes_secrets/session.tf",
    "admin-edx": "kubernetes_secrets/admin_openedx.tf",
    "ecommerce-config": "kubernetes_secrets/ecommerce.tf",
    "license-manager-oauth": "kubernetes_secrets/license_manager.tf",
}

#: Cookiecutter answers that delete a whole Terraform module (post_gen_project.py),
#: and the Secrets that go with it. The modules ``kubernetes``, ``s3`` and
#: ``kubernetes_secrets`` are always generated.
MODULE_SWITCHES: dict[str, tuple[str, ...]] = {
    "stack_add_remote_mysql": (
        "mysql-root",
        "mysql-openedx",
        "mysql-discovery",
        "mysql-ecommerce",
        "mysql-notes",
        "mysql-xqueue",
        "mysql-credentials",
        "mysql-license-manager",
    ),
    "stack_add_remote_redis": ("redis",),
    "stack_add_remote_mongodb": ("mongodb-admin", "mongodb-openedx"),
    "environment_add_aws_ses": ("aws-ses-config",),
}

#: Secrets inside a generated module that exist only for some cookiecutter answers
#: (Jinja ``{% if %}`` blocks around the resource), with cookiecutter's default.
CONDITIONAL_SECRETS: dict[str, tuple[str, str]] = {
    "mysql-discovery": ("ci_deploy_install_discovery_service", "Y"),
    "mysql-credentials": ("ci_deploy_install_credentials_server", "N"),
    "mysql-license-manager": ("ci_deploy_install_license_manager_service", "N"),
}

#: Secrets their deploy workflow reads, and the openedx-actions action that does
#: (the service plugins' actions run only when that plugin is switched on). Only
#: ``cookiecutter`` is read by nothing.
READ_BY_WORKFLOW: dict[str, str] = {
    "mysql-root": "openedx-actions/tutor-k8s-configure-mysql",
    "mysql-openedx": "openedx-actions/tutor-k8s-configure-mysql",
    "mysql-discovery": "openedx-actions/tutor-plugin-enable-discovery",
    "mysql-ecommerce": "openedx-actions/tutor-plugin-enable-ecommerce",
    "mysql-notes": "openedx-actions/tutor-plugin-enable-notes",
    "mysql-xqueue": "openedx-actions/tutor-plugin-enable-xqueue",
    "mysql-credentials": "openedx-actions/tutor-plugin-enable-credentials",
    "mysql-license-manager": "openedx-actions/tutor-enable-plugin-license-manager",
    "redis": "openedx-actions/tutor-k8s-configure-redis",
    "mongodb-admin": "openedx-actions/tutor-k8s-configure-mongodb",
    "mongodb-openedx": "openedx-actions/tutor-k8s-configure-mongodb",
    "s3-openedx-storage": "openedx-actions/tutor-plugin-enable-s3",
    "aws-ses-config": "openedx-actions/tutor-k8s-configure-ses",
    "jwt": "openedx-actions/tutor-k8s-configure-jwt",
    "edx-secret-key": "openedx-actions/tutor-k8s-configure-edx-secret",
    "admin-edx": "openedx-actions/tutor-k8s-configure-edx-admin",
    "ecommerce-config": "openedx-actions/tutor-plugin-enable-ecommerce",
    "license-manager-oauth": "openedx-actions/tutor-enable-plugin-license-manager",
}

#: Secrets that their *workflow* (not Terraform) writes into the namespace on every
#: deploy: openedx-actions/tutor-print-dump stores what it printed, with
#: ``kubectl create secret generic --from-file``. ``cookiecutter-ci-deploy-tutor``
#: and the ``-lms``/``-cms`` ones hold every credential of config.yml and the
#: rendered lms/cms.env.yml. Names -> data keys (the file names).
WORKFLOW_SECRETS: dict[str, tuple[str, ...]] = {
    "cookiecutter-ci-deploy-pip": ("pip.json",),
    "cookiecutter-ci-deploy-apps": ("apps.json",),
    "cookiecutter-ci-deploy-plugins": ("plugins.json",),
    "cookiecutter-ci-deploy-tutor": ("config.json",),
    "cookiecutter-ci-deploy-lms": ("lms.env.yml",),
    "cookiecutter-ci-deploy-cms": ("cms.env.yml",),
}


@dataclass(frozen=True)
class TutorKeys:
    """A Secret's data keys, split by whether Tutor 22 core defines them as named."""

    known: tuple[str, ...]
    unknown: tuple[str, ...]


#: Per Secret: data keys Tutor 22 core knows (``defaults.yml`` or ``base.yml``), and
#: the others. Plugin keys count as unknown here (``DISCOVERY_MYSQL_*`` belong to
#: tutor-discovery, ``S3_*`` to tutor-contrib-s3 ...). ``jwt/private_key`` is
#: unknown as named; renamed it is ``JWT_RSA_PRIVATE_KEY`` (:data:`TUTOR_RENAMES`).
TUTOR22_KEYS: dict[str, TutorKeys] = {
    "cookiecutter": TutorKeys(known=(), unknown=("tags",)),
    "mysql-root": TutorKeys(
        known=(
            "MYSQL_ROOT_USERNAME",
            "MYSQL_ROOT_PASSWORD",
            "MYSQL_HOST",
            "MYSQL_PORT",
        ),
        unknown=(),
    ),
    "mysql-openedx": TutorKeys(
        known=(
            "OPENEDX_MYSQL_DATABASE",
            "OPENEDX_MYSQL_USERNAME",
            "OPENEDX_MYSQL_PASSWORD",
            "MYSQL_HOST",
            "MYSQL_PORT",
        ),
        unknown=(),
    ),
    **{
        f"mysql-{service.lower().replace('_', '-')}": TutorKeys(
            known=("MYSQL_HOST", "MYSQL_PORT"),
            unknown=(
                f"{service}_MYSQL_DATABASE",
                f"{service}_MYSQL_USERNAME",
                f"{service}_MYSQL_PASSWORD",
            ),
        )
        for service in (
            "DISCOVERY",
            "ECOMMERCE",
            "NOTES",
            "XQUEUE",
            "CREDENTIALS",
            "LICENSE_MANAGER",
        )
    },
    "redis": TutorKeys(known=("REDIS_HOST",), unknown=("REDIS_KEY_PREFIX",)),
    "mongodb-admin": TutorKeys(
        known=("MONGODB_HOST", "MONGODB_PORT"),
        unknown=("MONGODB_ADMIN_USERNAME", "MONGODB_ADMIN_PASSWORD"),
    ),
    "mongodb-openedx": TutorKeys(
        known=(
            "MONGODB_DATABASE",
            "MONGODB_HOST",
            "MONGODB_USERNAME",
            "MONGODB_PASSWORD",
            "MONGODB_PORT",
            "MONGODB_USE_SSL",
            "MONGODB_REPLICA_SET",
            "MONGODB_AUTH_MECHANISM",
            "MONGODB_AUTH_SOURCE",
        ),
        unknown=(
            "FORUM_MONGODB_DATABASE",
            "FORUM_MONGODB_USE_SSL",
            "FORUM_MONGODB_AUTH_SOURCE",
            "FORUM_MONGODB_AUTH_MECH",
        ),
    ),
    "s3-openedx-storage": TutorKeys(
        known=("OPENEDX_AWS_ACCESS_KEY", "OPENEDX_AWS_SECRET_ACCESS_KEY"),
        unknown=(
            "S3_STORAGE_BUCKET",
            "S3_BACKUP_BUCKET",
            "S3_REGION",
            "S3_CUSTOM_DOMAIN",
        ),
    ),
    "aws-ses-config": TutorKeys(
        known=(
            "SMTP_HOST",
            "SMTP_PORT",
            "SMTP_USE_SSL",
            "SMTP_USE_TLS",
            "SMTP_USERNAME",
            "SMTP_PASSWORD",
        ),
        unknown=(),
    ),
    "jwt": TutorKeys(known=(), unknown=("private_key",)),
    "edx-secret-key": TutorKeys(known=("OPENEDX_SECRET_KEY",), unknown=()),
    "admin-edx": TutorKeys(
        known=(), unknown=("ADMIN_USER", "ADMIN_PASSWORD", "ADMIN_EMAIL")
    ),
    "ecommerce-config": TutorKeys(
        known=(), unknown=("ECOMMERCE_ENABLE_IDENTITY_VERIFICATION",)
    ),
    "license-manager-oauth": TutorKeys(
        known=(),
        unknown=(
            "LICENSE_MANAGER_OAUTH2_KEY_DEV",
            "LICENSE_MANAGER_OAUTH2_SECRET_DEV",
            "LICENSE_MANAGER_OAUTH2_KEY",
            "LICENSE_MANAGER_OAUTH2_SECRET",
            "LICENSE_MANAGER_OAUTH2_KEY_SSO_DEV",
            "LICENSE_MANAGER_OAUTH2_SECRET_SSO_DEV",
            "LICENSE_MANAGER_OAUTH2_KEY_SSO",
            "LICENSE_MANAGER_OAUTH2_SECRET_SSO",
        ),
    ),
}

#: Keys whose Tutor setting has another name, in ``EKS_SECRET_KEYS`` form.
TUTOR_RENAMES: dict[str, str] = {"jwt/private_key": "JWT_RSA_PRIVATE_KEY"}

#: Keys that more than one Secret holds, with the Secrets holding each (same value
#: in all of them: the environment copies come from one shared Secret).
DUPLICATED_KEYS: dict[str, tuple[str, ...]] = {
    "MYSQL_HOST": (
        "mysql-root",
        "mysql-openedx",
        "mysql-discovery",
        "mysql-ecommerce",
        "mysql-notes",
        "mysql-xqueue",
        "mysql-credentials",
        "mysql-license-manager",
    ),
    "MYSQL_PORT": (
        "mysql-root",
        "mysql-openedx",
        "mysql-discovery",
        "mysql-ecommerce",
        "mysql-notes",
        "mysql-xqueue",
        "mysql-credentials",
        "mysql-license-manager",
    ),
    "MONGODB_HOST": ("mongodb-admin", "mongodb-openedx"),
    "MONGODB_PORT": ("mongodb-admin", "mongodb-openedx"),
}


#: Names in the stack's shell-format environment ``config.yml`` (``NAME=value``
#: lines the workflow appended to ``$GITHUB_ENV``), and the Tutor setting each one
#: fed. Every version of the template (2022-03 to 2024-09) used this format; the
#: names changed: the ``DOCKER_IMAGE_*`` lines were there until 2022-05-27,
#: ``MFE_HOSTNAME`` came in 2024-01 (and was never passed on to Tutor).
LEGACY_CONFIG_KEYS: dict[str, str] = {
    "LMS_HOSTNAME": "LMS_HOST",
    "CMS_HOSTNAME": "CMS_HOST",
    "MFE_HOSTNAME": "MFE_HOST",
    "DOCKER_IMAGE_OPENEDX": "DOCKER_IMAGE_OPENEDX",
    "DOCKER_IMAGE_MFE": "MFE_DOCKER_IMAGE",
    "DOCKER_IMAGE_CREDENTIALS": "CREDENTIALS_DOCKER_IMAGE",
    "DOCKER_IMAGE_BACKUP": "BACKUP_DOCKER_IMAGE",
}


def stack_secrets(namespace_hint: str) -> dict[str, dict[str, str]]:
    """Every Secret the stack's Terraform creates in the namespace ``namespace_hint``.

    Secret name -> data (decoded strings), with every cookiecutter switch on. Values
    are new on each call; a shared value (``MYSQL_HOST`` in all ``mysql-*``
    Secrets, ``MONGODB_HOST``/``MONGODB_PORT`` in both MongoDB Secrets) is the same
    in every Secret of one call, as it is in the stack.
    """
    names = stack_names(namespace_hint)
    return {name: build(names) for name, build in SECRET_BUILDERS.items()}


#: The Secrets of the stack that the plugin's default EKS_SECRETS reads, in its order.
DEFAULT_READ = (
    "mysql-root",
    "mysql-openedx",
    "redis",
    "mongodb-openedx",
    "aws-ses-config",
    "s3-openedx-storage",
    "edx-secret-key",
    "jwt",
    "admin-edx",
)
