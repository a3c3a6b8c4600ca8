#!/usr/bin/env bash
# The project's test command (README.md): formatting, lints, and every test,
# with the crash failpoints compiled in. Installs what the tests need itself.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --features failpoints -- -D warnings

echo "== cargo test"
# Bounded property run of the loader (raise PROPTEST_CASES for a longer fuzz).
export PROPTEST_CASES="${PROPTEST_CASES:-2000}"
cargo test --workspace --features failpoints -- --color never
