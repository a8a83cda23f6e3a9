"""S3 storage: the rendered settings make django-storages write user files to the bucket.

A real S3 endpoint (moto's server on 127.0.0.1) and a real Django with
django-storages: the settings the plugin renders into production.py are executed
and used to store a file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

from .conftest import Project

MARKER = "# tutor-contrib-eks: user files in S3"


def s3_settings(project: Project, service: str) -> dict[str, t.Any]:
    """Execute the plugin's S3 block of the rendered production.py."""
    text = project.env_file(f"apps/openedx/settings/{service}/production.py")
    assert MARKER in text, "the S3 settings are missing"
    block = text[text.index(MARKER) :]
    lines = []
    for line in block.splitlines():
        lines.append(line)
        if line.startswith("VIDEO_TRANSCRIPTS_SETTINGS"):
            break
    namespace: dict[str, t.Any] = {"STORAGES": {"staticfiles": {"BACKEND": "static"}}}
    exec(compile("\n".join(lines), "production.py", "exec"), namespace)  # noqa: S102
    return namespace


def render(project: Project, extra: str = "") -> None:
    project.write(
        "environments/dev/config.yml",
        "LMS_HOST: lms.dev.example.com\nS3_STORAGE_BUCKET: openedx-uploads\nS3_REGION: eu-west-1\n"
        + extra,
    )
    project.save()


def test_no_bucket_no_s3_settings(project: Project) -> None:
    project.save()
    assert MARKER not in project.env_file("apps/openedx/settings/lms/production.py")


def test_irsa_needs_no_static_key(project: Project) -> None:
    render(project)
    for service in ("lms", "cms"):
        ns = s3_settings(project, service)
        assert ns["AWS_STORAGE_BUCKET_NAME"] == "openedx-uploads"
        assert ns["AWS_S3_REGION_NAME"] == "eu-west-1"
        assert ns["AWS_ACCESS_KEY_ID"] is None, (
            "no static key: boto3 uses the pod's role"
        )
        assert (
            ns["STORAGES"]["default"]["BACKEND"]
            == "storages.backends.s3boto3.S3Boto3Storage"
        )
        assert ns["STORAGES"]["staticfiles"] == {"BACKEND": "static"}, (
            "static files stay where they are"
        )
        assert (
            ns["GRADES_DOWNLOAD"]["STORAGE_CLASS"]
            == "storages.backends.s3boto3.S3Boto3Storage"
        )
        assert ns["ORA2_FILEUPLOAD_BACKEND"] == "s3"
        assert (
            ns["PROFILE_IMAGE_BACKEND"]["class"]
            == "storages.backends.s3boto3.S3Boto3Storage"
        )
    cms = project.env_file("apps/openedx/settings/cms/production.py")
    assert (
        'COURSE_IMPORT_EXPORT_STORAGE = "cms.djangoapps.contentstore.storage.ImportExportS3Storage"'
        in cms
    )


def test_files_land_in_the_bucket(project: Project, s3_server: str) -> None:
    s3_endpoint = s3_server
    import boto3

    render(
        project,
        f"S3_ENDPOINT_URL: {s3_endpoint}\nOPENEDX_AWS_ACCESS_KEY: testing\nOPENEDX_AWS_SECRET_ACCESS_KEY: testing\n"
        "S3_CUSTOM_DOMAIN: ''\n",
    )
    ns = s3_settings(project, "lms")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(
        Bucket="openedx-uploads",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )

    django_settings = json.dumps({k: v for k, v in ns.items() if k.isupper()})
    code = f"""
import django, json
from django.conf import settings
settings.configure(**json.loads({django_settings!r}))
django.setup()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
name = default_storage.save("course/handout.txt", ContentFile(b"hello"))
print(name)
grades = storages.create_storage({{"BACKEND": settings.GRADES_DOWNLOAD["STORAGE_CLASS"], "OPTIONS": settings.GRADES_DOWNLOAD["STORAGE_KWARGS"]}})
print(grades.save("report.csv", ContentFile(b"a,b")))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["course/handout.txt", "report.csv"]
    keys = {
        o["Key"] for o in client.list_objects_v2(Bucket="openedx-uploads")["Contents"]
    }
    assert keys == {"media/course/handout.txt", "grades/report.csv"}
