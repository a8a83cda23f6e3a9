# tutor-contrib-eks: run `make help` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The local control plane's binaries (kubectl of the server's minor) come first.
export PATH := $(CURDIR)/.cluster/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help compile install test test-unit test-services test-cluster system-packages test-lint test-types test-docs docs docs-reference format bench demo cluster-up cluster-down clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	$(PY) -m pip install --quiet -e '.[dev]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $@

# Bytecode, as a pip-installed wheel has it (this machine sets PYTHONDONTWRITEBYTECODE,
# and every `tutor` command imports the plugin).
compile: $(VENV)/.installed
	$(PY) -m compileall -q tutoreks

install: $(VENV)/.installed compile ## Create .venv with the plugin (editable) and its test tools

UNIT := not cluster and not services and not kubectl

test: test-lint test-types test-unit test-services test-cluster test-docs ## Run everything: lint, types, the unit, service and cluster tiers, then the docs

test-unit: install ## Unit tier: in-process, no Go, kubectl, database or cluster (under a minute)
	$(PY) -m pytest -m "$(UNIT)" -n 3 --dist worksteal $(PYTEST_ARGS)  # 3 workers on 2 cores: some tests wait on timers; idle workers take queued tests from busy ones

system-packages: ## Install the Debian packages the tests need (MariaDB, Redis, curl, openssl), if missing
	bash scripts/system-packages.sh

test-services: install system-packages ## Service tier: MariaDB, Redis and an S3 server on 127.0.0.1
	$(PY) -m pytest -m "services and not cluster and not kubectl" $(PYTEST_ARGS)

test-cluster: install system-packages cluster-up ## Cluster tier: kubectl builds and the local control plane
	$(PY) -m pytest -m "(cluster or kubectl) and not disruptive" -n 2 --dist loadfile $(PYTEST_ARGS)
	$(PY) -m pytest -m "disruptive" $(PYTEST_ARGS)

test-lint: install ## ruff lint and format check; the pipeline's import layers (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test-types: install ## mypy --strict
	$(VENV)/bin/mypy

docs: install ## Build the documentation site into site/ (mkdocs build --strict), after checking the generated pages
	$(PY) docs/gen_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-reference: install ## Write the generated pages docs/reference/configuration.md and cli.md from the code
	$(PY) docs/gen_reference.py

test-docs: docs ## The site builds strictly; tests/test_docs.py; mypy --strict of docs/gen_reference.py
	$(PY) -m pytest tests/test_docs.py $(PYTEST_ARGS)
	$(VENV)/bin/mypy docs/gen_reference.py

format: install ## Format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: install cluster-up ## Deploy environments/dev with tutor k8s launch on the local control plane
	bash scripts/demo.sh

bench: install cluster-up ## Benchmarks against same-run baselines; writes BENCHMARKS.md
	command -v jq >/dev/null || (apt-get update -qq && apt-get install -y -qq jq)
	test -x $(VENV)/awscli/bin/aws || ($(PYTHON) -m venv $(VENV)/awscli && $(VENV)/awscli/bin/pip install --quiet awscli)
	@# What users install (no test tools, whose imports would be measured too):
	@# the plugin with [check], built from this checkout, in its own virtualenv.
	test -x $(VENV)/bench/bin/tutor || $(PYTHON) -m venv $(VENV)/bench
	$(VENV)/bench/bin/pip install --quiet '.[check]' > $(VENV)/bench.log 2>&1 || (cat $(VENV)/bench.log; exit 1)
	$(VENV)/bench/bin/pip install --quiet --force-reinstall --no-deps . >> $(VENV)/bench.log 2>&1 || (cat $(VENV)/bench.log; exit 1)
	$(VENV)/bench/bin/python bench/run.py

cluster-up: install ## Start the local control plane (builds and caches it the first time); writes .cluster/kubeconfig
	bash cluster/up.sh

cluster-down: ## Stop the local control plane
	bash cluster/down.sh

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
