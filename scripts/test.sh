#!/usr/bin/env bash
# The project's test command (README.md): formatting, lints, and every test,
# with the crash failpoints compiled in. Installs what the tests need itself.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test dependencies"
# moto: a real AWS emulator the AWS tests cross-check the lab against.
python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6' 'awscli>=1.40,<2'
# kubectl: a real Kubernetes client the lab's API is checked with (on the machine image;
# Debian's package otherwise).
if ! command -v kubectl >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq kubectl) >/dev/null 2>&1 \
    || { echo "kubectl is needed by the lab tests and could not be installed" >&2; exit 1; }
fi

# strace: the durability test traces a run's system calls.
if ! command -v strace >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq strace) >/dev/null 2>&1 \
    || { echo "strace is needed by the durability test and could not be installed" >&2; exit 1; }
fi

# The browser test: Debian's Chromium (browsers that download themselves cannot work
# here) and playwright-core from npm, at the version the committed lockfile pins.
# Prometheus and Alertmanager: the real monitoring stack the fencing responder is
# tested with (tests/e2e/respond.rs), from Debian's packages; their services are not
# started (the test starts its own on loopback).
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/prometheus-alertmanager ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager) >/dev/null 2>&1 \
    || { echo "prometheus and prometheus-alertmanager are needed by the fencing test and could not be installed" >&2; exit 1; }
  # Debian starts them as services where it can: the tests start their own.
  (service prometheus stop; service prometheus-alertmanager stop) >/dev/null 2>&1 || true
fi
# HAProxy: the lab's real global load balancer (tests/e2e/haproxy.rs, `runbook lab
# --traffic haproxy`), from Debian's packages; the lab starts its own in the foreground.
if [ ! -x /usr/sbin/haproxy ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy) >/dev/null 2>&1 \
    || { echo "haproxy is needed by the load-balancer tests and could not be installed" >&2; exit 1; }
  (service haproxy stop) >/dev/null 2>&1 || true
fi
if [ ! -x /usr/bin/chromium ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || { echo "chromium is needed by the browser test and could not be installed" >&2; exit 1; }
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# PostgreSQL: a throwaway server for the team-mode tests (the journal in a database),
# on 127.0.0.1, stopped when this script ends.
pgdir=$(mktemp -d /tmp/runbook-test-pg.XXXXXX)
trap 'bash scripts/pg.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
RUNBOOK_TEST_PG=$(bash scripts/pg.sh start "$pgdir")
RUNBOOK_TEST_PGPASSWORD=$(cat "$pgdir/password")
export RUNBOOK_TEST_PG RUNBOOK_TEST_PGPASSWORD
echo "PostgreSQL for the tests: $RUNBOOK_TEST_PG"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --features failpoints,bench -- -D warnings

echo "== fuzz (each parser of user input for ${FUZZ_SECONDS:-15}s; bash scripts/fuzz.sh for 10 minutes each)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-15}"

echo "== cargo test"
# Bounded property runs of the loader (raise PROPTEST_CASES for a longer run; a panic is
# never "fixed" by lowering it).
export PROPTEST_CASES="${PROPTEST_CASES:-2000}"
cargo test --workspace --features failpoints,bench -- --color never

