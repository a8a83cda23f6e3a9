"""Package metadata and Tutor entry point for tutor-contrib-eks."""

from __future__ import annotations

import os

from setuptools import find_packages, setup

HERE = os.path.abspath(os.path.dirname(__file__))


def load_readme() -> str:
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


def load_about() -> dict[str, str]:
    about: dict[str, str] = {}
    with open(os.path.join(HERE, "tutoreks", "__about__.py"), encoding="utf-8") as f:
        exec(f.read(), about)  # noqa: S102 - our own version file
    return about


ABOUT = load_about()

setup(
    name="tutor-contrib-eks",
    version=ABOUT["__version__"],
    url="https://github.com/tutor-contrib-eks/tutor-contrib-eks",
    license="AGPL-3.0-only",
    author="tutor-contrib-eks developers",
    description=(
        "Tutor plugin: deploy Open edX to Kubernetes (AWS EKS first) from CI, "
        "with credentials from Kubernetes Secrets, per-environment config, "
        "settings_merge and Ingress/TLS manifests"
    ),
    long_description=load_readme(),
    long_description_content_type="text/markdown",
    packages=find_packages(exclude=["tests*"]),
    include_package_data=True,
    package_data={"tutoreks": ["patches/*", "templates/eks/**/*", "py.typed"]},
    python_requires=">=3.10",
    # Tutor brings the official `kubernetes` client and PyYAML.
    install_requires=["tutor>=22,<23", "kubernetes>=30"],
    extras_require={
        # `tutor eks check`: the maintained clients of the backing services.
        "check": ["PyMySQL>=1.1", "redis>=5", "pymongo>=4", "boto3>=1.34"],
        # `make docs`: the documentation site (docs/, mkdocs.yml).
        "docs": ["mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10"],
        "dev": [
            "tutor-contrib-eks[check]",
            "tutor-contrib-eks[docs]",
            "pytest>=8",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "mypy>=1.10",
            "ruff>=0.5",
            "import-linter>=2.1",
            "types-PyYAML",
            "types-setuptools",
            "kubernetes-validate>=1.30",
            "tutor-mfe>=22,<23",
            "django>=4.2",
            # the settings an environment renders, used as the pods use them
            "django-redis>=5.4",
            "kombu>=5.3",
            "django-storages[s3]>=1.14",
            "moto[server]>=5",
            "redis>=5",
            "pymongo>=4",
            "jsonschema>=4",
            "cryptography>=41",
        ],
    },
    entry_points={"tutor.plugin.v1": ["eks = tutoreks.plugin"]},
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
)
