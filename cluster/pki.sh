# shellcheck shell=bash disable=SC2034
# cluster/pki.sh: the control plane's CA, certificates, keys and kubeconfigs.
#
# Sourced by cluster/up.sh after cluster/lib.sh. ensure_pki creates, with
# openssl, whatever is missing under .cluster/pki/ (a missing CA regenerates
# everything, so nothing is ever signed by two different CAs):
#   ca.{crt,key}                      cluster CA (also signs CSRs for the controller-manager)
#   etcd-server.{crt,key}             etcd serving + peer cert, SAN 127.0.0.1/localhost
#   apiserver-etcd-client.{crt,key}   kube-apiserver -> etcd (etcd requires client certs)
#   apiserver.{crt,key}               kube-apiserver serving cert, SAN 127.0.0.1/localhost/kubernetes.*
#   admin.{crt,key}                   CN=kubernetes-admin, O=system:masters
#   controller-manager.{crt,key}      CN=system:kube-controller-manager (client + serving)
#   scheduler.{crt,key}               CN=system:kube-scheduler (client + serving)
#   kwok.{crt,key}                    CN=system:kwok-controller (RBAC-bound, see up.sh)
#   sa.{key,pub}                      service-account token signing key pair
#   front-proxy-ca.{crt,key}          CA of the aggregation layer's request headers
#   front-proxy-client.{crt,key}      kube-apiserver -> extension apiservers
# and kubeconfigs: .cluster/kubeconfig (admin) and .cluster/pki/<name>.kubeconfig.

DAYS=3650

_openssl() { openssl "$@" >>"$LOG_DIR/pki.log" 2>&1 || die "pki: openssl $1 failed (see $LOG_DIR/pki.log)"; }

# sign NAME CN ORG EXTS: key + cert signed by the CA. ORG may be empty.
_sign() {
  local name="$1" cn="$2" org="$3" exts="$4" subj
  subj="/CN=$cn"
  [[ -n "$org" ]] && subj="/O=$org$subj"
  _openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI_DIR/$name.key"
  _openssl req -new -key "$PKI_DIR/$name.key" -subj "$subj" -out "$PKI_DIR/$name.csr"
  printf '%s\n' "$exts" >"$PKI_DIR/$name.ext"
  _openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -days "$DAYS" -sha256 -extfile "$PKI_DIR/$name.ext" -out "$PKI_DIR/$name.crt"
  rm -f "$PKI_DIR/$name.csr" "$PKI_DIR/$name.ext"
}

_client_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

_serving_ext() { # SANs
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=$1"
}

ensure_pki() {
  mkdir -p "$PKI_DIR" "$LOG_DIR"
  chmod 700 "$PKI_DIR"
  command -v openssl >/dev/null 2>&1 || die "pki: openssl not found"
  if [[ ! -s "$PKI_DIR/ca.crt" || ! -s "$PKI_DIR/ca.key" ]]; then
    log "pki: creating cluster CA and certificates in $PKI_DIR"
    find "$PKI_DIR" -mindepth 1 -delete
    _openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI_DIR/ca.key"
    _openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=tutor-contrib-eks-local-ca" -days "$DAYS" -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI_DIR/ca.crt"
  fi
  local local_sans="IP:127.0.0.1,DNS:localhost"
  [[ -s "$PKI_DIR/etcd-server.crt" ]] || _sign etcd-server etcd "" "$(_serving_ext "$local_sans")"
  [[ -s "$PKI_DIR/apiserver-etcd-client.crt" ]] || _sign apiserver-etcd-client kube-apiserver-etcd-client "" "$_client_ext"
  [[ -s "$PKI_DIR/apiserver.crt" ]] || _sign apiserver kube-apiserver "" "$(_serving_ext \
    "$local_sans,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
  [[ -s "$PKI_DIR/admin.crt" ]] || _sign admin kubernetes-admin system:masters "$_client_ext"
  [[ -s "$PKI_DIR/controller-manager.crt" ]] || _sign controller-manager system:kube-controller-manager "" "$(_serving_ext "$local_sans")"
  [[ -s "$PKI_DIR/scheduler.crt" ]] || _sign scheduler system:kube-scheduler "" "$(_serving_ext "$local_sans")"
  [[ -s "$PKI_DIR/kwok.crt" ]] || _sign kwok system:kwok-controller "" "$_client_ext"
  if [[ ! -s "$PKI_DIR/sa.key" ]]; then
    _openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI_DIR/sa.key"
    _openssl pkey -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub"
  fi
  if [[ ! -s "$PKI_DIR/front-proxy-ca.crt" ]]; then
    _openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI_DIR/front-proxy-ca.key"
    _openssl req -x509 -new -key "$PKI_DIR/front-proxy-ca.key" -subj "/CN=tutor-contrib-eks-front-proxy-ca" \
      -days "$DAYS" -sha256 -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$PKI_DIR/front-proxy-ca.crt"
    rm -f "$PKI_DIR/front-proxy-client.crt"
  fi
  if [[ ! -s "$PKI_DIR/front-proxy-client.crt" ]]; then
    _openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI_DIR/front-proxy-client.key"
    _openssl req -new -key "$PKI_DIR/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$PKI_DIR/fp.csr"
    printf '%s\n' "$_client_ext" >"$PKI_DIR/fp.ext"
    _openssl x509 -req -in "$PKI_DIR/fp.csr" -CA "$PKI_DIR/front-proxy-ca.crt" -CAkey "$PKI_DIR/front-proxy-ca.key" \
      -CAcreateserial -days "$DAYS" -sha256 -extfile "$PKI_DIR/fp.ext" -out "$PKI_DIR/front-proxy-client.crt"
    rm -f "$PKI_DIR/fp.csr" "$PKI_DIR/fp.ext"
  fi
  chmod 600 "$PKI_DIR"/*.key

  write_kubeconfig "$KUBECONFIG_FILE" admin
  write_kubeconfig "$PKI_DIR/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$PKI_DIR/scheduler.kubeconfig" scheduler
  write_kubeconfig "$PKI_DIR/kwok.kubeconfig" kwok
}

# write_kubeconfig FILE CERTNAME: self-contained kubeconfig (data embedded).
write_kubeconfig() {
  local file="$1" name="$2" tmp
  tmp="$(mktemp "$file.XXXXXX")"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tutor-eks-local
  cluster:
    server: $SERVER_URL
    certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$PKI_DIR/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI_DIR/$name.key")
contexts:
- name: tutor-eks-local
  context:
    cluster: tutor-eks-local
    user: $name
    namespace: default
current-context: tutor-eks-local
EOF
  chmod 600 "$tmp"
  if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv "$tmp" "$file"; fi
}
