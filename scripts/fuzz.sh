#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every parser of user input: the
# runbook loader, the environment file, parameter values, journal entries.
#
#   bash scripts/fuzz.sh            # each target for 10 minutes
#   bash scripts/fuzz.sh 15         # each target for 15 seconds (the test command)
#   bash scripts/fuzz.sh 600 runbook_loader
#
# New inputs go to a scratch corpus (fuzz/corpus/<target> is only read); a crash
# stops with the input in fuzz/artifacts/<target>/: copy it to fuzz/regressions/ and
# add a regression test named after what broke.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(runbook_loader environment_file parameter_values journal_entries)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz passes -Z flags (the sanitizer, coverage); the stable toolchain on this
# machine accepts them with RUSTC_BOOTSTRAP (no nightly can be fetched here).
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir fuzz
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  echo "== fuzz $t for ${secs}s"
  rc=0
  cargo fuzz run --fuzz-dir fuzz "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 >"$scratch/$t.log" 2>&1 || rc=$?
  grep -E '^(Done|#[0-9]+.*DONE)|panicked|ERROR|SUMMARY|Test unit written' "$scratch/$t.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$scratch/$t.log" >&2
    echo "fuzz target $t found a crash (exit $rc): the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
