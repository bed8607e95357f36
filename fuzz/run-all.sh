#!/usr/bin/env bash
# Runs every target in fuzz/fuzz_targets (or the TARGETs named) for SECONDS each (default 60) on
# stable Rust (RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags),
# seeding each corpus from fuzz/corpus/<target> (committed seeds made from
# the test fixtures). Prints one line per target with its exec count, and
# fails if any target finds a crash (the artifact is under fuzz/artifacts).
set -euo pipefail
SECONDS_PER_TARGET="${1:-60}"
shift || true
# optional target names after SECONDS: run only those (e.g. to split the
# campaign over two cores: `run-all.sh 600 smp sops & run-all.sh 600 yaml`)
ONLY=" $* "
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
status=0
summary=""
for src in fuzz_targets/*.rs; do
  target="$(basename "$src" .rs)"
  if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $target "* ]]; then
    continue
  fi
  mkdir -p "corpus/$target" "artifacts/$target"
  work="$(mktemp -d)"
  cp -r "corpus/$target/." "$work/" 2>/dev/null || true
  log="$(mktemp)"
  if cargo fuzz run "$target" "$work" -- -max_total_time="$SECONDS_PER_TARGET" \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
    tail -40 "$log" >&2
  fi
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)"
  if [ -z "$execs" ]; then
    execs="$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#' || true)"
  fi
  line="$target ${SECONDS_PER_TARGET}s ${execs:-?} execs $result"
  echo "$line" >&2
  summary+="$line"$'\n'
  rm -rf "$work" "$log"
done
printf '%s' "$summary"
exit $status
