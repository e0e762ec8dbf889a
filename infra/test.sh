#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what the tests need, start the
# stand-ins (Firestore and Pub/Sub emulators, fake-gcs-server), run every test, stop them.
# README's test command and .ci/run both call this script, so they can never drift apart.
#
#   bash infra/test.sh            everything (what CI runs)
#   bash infra/test.sh -k sign    extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
PY="${PYTHON:-python3}"

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v lego >/dev/null || need_apt+=(lego)
command -v pebble >/dev/null || need_apt+=(pebble)
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v go >/dev/null || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/smallstep/certificates/ca ] || need_apt+=(golang-github-smallstep-certificates-dev)
# Debian's chromium for the dashboard's browser tests (Playwright drives it; never `playwright install`).
command -v chromium >/dev/null || need_apt+=(chromium)
# The template differential suite renders with Go's text/template + sprig and reads step's default templates.
[ -d /usr/share/gocode/src/github.com/Masterminds/sprig ] || need_apt+=(golang-github-masterminds-sprig-dev)
[ -d /usr/share/gocode/src/go.step.sm/crypto/x509util ] || need_apt+=(golang-step-crypto-dev)
command -v gcloud >/dev/null || need_apt+=(google-cloud-cli google-cloud-cli-firestore-emulator google-cloud-cli-pubsub-emulator)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== apt-get install ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "== pip install"
# The lock pins what the deployed bundle installs (infra/bundle.py); the suite runs those versions.
"$PY" -m pip install -q --disable-pip-version-check -c infra/requirements.lock -e ".[dev,gcp,aws,pkcs11]" 2>&1 | grep -v "Running pip as the 'root' user" || true
"$PY" -m pip install -q --disable-pip-version-check -r infra/test-requirements.txt 2>&1 | grep -v "Running pip as the 'root' user" || true

echo "== checkov and terraform (tests/infra/test_terraform.py)"
# checkov pins packaging, networkx and boto3 versions that clash with ours: own venv.
CHECKOV_VENV="${CHECKOV_VENV:-/opt/checkov-venv}"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  "$PY" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check "checkov==3.3.30"
fi
export CHECKOV="$CHECKOV_VENV/bin/checkov"
# No Debian or PyPI package carries Terraform 1.x; the machine image provides it.
command -v terraform >/dev/null || { echo "terraform (>= 1.5) is not on PATH: the machine image should provide it" >&2; exit 1; }

echo "== start emulators"
export CIRRUS_EMULATOR_DIR="${CIRRUS_EMULATOR_DIR:-$(mktemp -d /tmp/cirrus-emulators.XXXXXX)}"
trap 'bash infra/emulators.sh stop >/dev/null 2>&1 || true' EXIT
bash infra/emulators.sh start
eval "$(bash infra/emulators.sh env)"

echo "== static checks"
static=0
"$PY" -m ruff check --output-format concise shared functions tests bench infra || static=1
"$PY" -m mypy shared || static=1

echo "== pytest"
set +e
"$PY" -m pytest -q -p no:cacheprovider --timeout 600 "$@"
rc=$?
set -e
if [ "$static" -ne 0 ]; then
  echo "static checks failed (ruff/mypy above)"
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
