#!/usr/bin/env bash
# `make demo`: the main job of a deploy, on the local control plane.
#
# What a CI job does on EKS, here against the control plane of cluster/up.sh:
# example Secrets (what a Terraform stack creates) -> `tutor plugins enable eks`
# -> `tutor k8s launch --non-interactive` for environments/dev -> what was deployed.
# Then the same job again from an empty tutor root, as every CI run starts: the
# same instance is deployed again and no Deployment rolls.
#
# Pods are simulated by kwok: no image is pulled and nothing runs in them. kwok
# marks pods Running/Ready and Job pods Succeeded, so Deployments become
# Available and Tutor's init Jobs complete; it gives the Ingress an address and
# marks the Certificate Ready, as an ingress controller and cert-manager would.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
# shellcheck source=/dev/null
source .cluster/env.sh
export PATH="$REPO/.venv/bin:$PATH"
export TUTOR_ROOT="$REPO/.demo/tutor-root"
export TUTOR_EKS_ENVIRONMENT=dev
NAMESPACE=openedx-dev

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Example Secrets in namespace $NAMESPACE (random passwords, never printed; kept if present)"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
pw() { openssl rand -hex 16; }
# Each Secret is created once: a second demo keeps the values (and the pods).
secret() {
  local name="$1"
  if kubectl get secret "$name" -n "$NAMESPACE" >/dev/null 2>&1; then
    echo "secret/$name kept"
  else
    kubectl create -f -
  fi
}
secret mysql-root <<YAML
apiVersion: v1
kind: Secret
metadata: {name: mysql-root, namespace: $NAMESPACE}
stringData:
  MYSQL_HOST: mysql.demo.internal
  MYSQL_PORT: "3306"
  MYSQL_ROOT_USERNAME: admin
  MYSQL_ROOT_PASSWORD: "$(pw)"
YAML
secret mysql-openedx <<YAML
apiVersion: v1
kind: Secret
metadata: {name: mysql-openedx, namespace: $NAMESPACE}
stringData:
  OPENEDX_MYSQL_USERNAME: openedx
  OPENEDX_MYSQL_PASSWORD: "$(pw)"
YAML
secret redis <<YAML
apiVersion: v1
kind: Secret
metadata: {name: redis, namespace: $NAMESPACE}
stringData:
  REDIS_HOST: redis.demo.internal
  REDIS_PORT: "6379"
  REDIS_PASSWORD: "$(pw)"
YAML
secret smtp <<YAML
apiVersion: v1
kind: Secret
metadata: {name: smtp, namespace: $NAMESPACE}
stringData:
  SMTP_HOST: email-smtp.demo.internal
  SMTP_PORT: "587"
  SMTP_USERNAME: demo
  SMTP_PASSWORD: "$(pw)"
  SMTP_USE_TLS: "true"
YAML

generations() {
  kubectl get deployments -n "$NAMESPACE" \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.generation} {end}'
}

ci_job() {
  step "CI job $1: empty tutor root, tutor plugins enable eks mfe"
  rm -rf "$TUTOR_ROOT"
  mkdir -p "$TUTOR_ROOT"
  # A new root would enable Tutor's default plugins, mfe and indigo; the examples
  # use mfe (what cookiecutter-openedx-devops stacks install) and not indigo (a
  # theme the Open edX image must contain): start from an explicit list.
  printf 'PLUGINS: []\n' > "$TUTOR_ROOT/config.yml"
  tutor plugins enable eks mfe
  step "CI job $1: TUTOR_EKS_ENVIRONMENT=$TUTOR_EKS_ENVIRONMENT tutor k8s launch --non-interactive"
  tutor k8s launch --non-interactive
}

ci_job 1
before="$(generations)"

step "What was deployed"
kubectl get ingress,certificates.cert-manager.io,services -n "$NAMESPACE"
kubectl get clusterissuers.cert-manager.io
kubectl get deployments -n "$NAMESPACE"
kubectl get jobs -n "$NAMESPACE" -o custom-columns='JOB:.metadata.name,SUCCEEDED:.status.succeeded'
tutor eks secrets
step "tutor eks status (no ingress controller or cert-manager runs here: kwok writes what they would, an address for the Ingress and a Ready Certificate)"
tutor eks status

ci_job 2
after="$(generations)"
if [[ "$before" != "$after" ]]; then
  printf '\nThe second deploy rolled Deployments:\n  before: %s\n  after:  %s\n' "$before" "$after" >&2
  exit 1
fi
printf '\nThe second deploy, from an empty tutor root, deployed the same instance: Tutor'"'"'s generated values came from the state Secret tutor-eks-state, and no Deployment rolled.\n'
printf 'Pods are simulated by kwok: no image ran. The rendered environment is in %s/env.\n' "$TUTOR_ROOT"
