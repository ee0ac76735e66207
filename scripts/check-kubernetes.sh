#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/kubernetes without a cluster:
#   1. kubernetes-validate --strict (the Kubernetes OpenAPI schemas, bundled; unknown fields fail)
#      against each Kubernetes version in KUBERNETES_VERSIONS;
#   2. scripts/check-kubernetes.py: its self-test (every rule is shown to fail on a bad pod), then
#      the Pod Security Standards (baseline and restricted) and the project's deploy rules.
# Needs python3 with venv and access to PyPI; the tools go to .build-deploy-venv/ (ignored by git).
# Prints "ok - ..." / "not ok - ..." lines; exits 1 when anything fails.
set -uo pipefail

cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
# The newest schema kubernetes-validate $KUBERNETES_VALIDATE_VERSION bundles, and an older release
# still run by many managed clusters.
KUBERNETES_VERSIONS="1.31.0 1.37.0"
VENV=.build-deploy-venv
MANIFESTS=(deploy/kubernetes/*.yaml)

failures=0
fail() { echo "not ok - $*"; failures=$((failures + 1)); }

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { echo "not ok - create $VENV (is python3-venv installed?)"; exit 1; }
fi
installed=$("$VENV/bin/python" -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')
if [ "$installed" != "$KUBERNETES_VALIDATE_VERSION" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
        || { echo "not ok - pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"; exit 1; }
fi
echo "ok - kubernetes-validate $KUBERNETES_VALIDATE_VERSION in $VENV"

if [ ! -e "${MANIFESTS[0]}" ]; then
    echo "not ok - no manifests in deploy/kubernetes"
    exit 1
fi

for version in $KUBERNETES_VERSIONS; do
    for manifest in "${MANIFESTS[@]}"; do
        if output=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$manifest" 2>&1); then
            echo "ok - kubernetes-validate --strict -k $version $manifest"
        else
            fail "kubernetes-validate --strict -k $version $manifest"
            printf '%s\n' "$output" | sed 's/^/#   /'
        fi
    done
done

if "$VENV/bin/python" scripts/check-kubernetes.py --self-test --dockerfile deploy/Dockerfile "${MANIFESTS[@]}"; then
    echo "ok - pod security and deploy rules"
else
    fail "pod security and deploy rules"
fi

if [ "$failures" -ne 0 ]; then
    echo "not ok - check-kubernetes: $failures failure(s)"
    exit 1
fi
echo "ok - check-kubernetes"
