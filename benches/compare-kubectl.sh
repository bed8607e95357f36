#!/bin/sh
# Times `examples/build.rs` against `kubectl kustomize` on the benchmark
# tree (a production overlay over N apps of Deployment + Service +
# ConfigMap), in one run, and checks both print the same documents.
#
#   benches/compare-kubectl.sh [apps]      # default 1333 apps = 4,000 resources
set -eu
apps=${1:-1333}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v kubectl >/dev/null || { echo "kubectl is required" >&2; exit 1; }
cd "$root"
cargo build --quiet --release --example build --example bench_tree
target=${CARGO_TARGET_DIR:-$root/target}
"$target/release/examples/bench_tree" "$work/tree" "$apps"
t() { /usr/bin/time -f "%e %U %M" -o "$work/$1.time" "$@" > "$work/$1.out" 2>/dev/null; }
/usr/bin/time -f "%e %U %M" -o "$work/ours.time" \
  "$target/release/examples/build" --root "$work/tree" "$work/tree/production" > "$work/ours.out"
/usr/bin/time -f "%e %U %M" -o "$work/kubectl.time" \
  kubectl kustomize "$work/tree/production" > "$work/kubectl.out"
read -r ow ou om < "$work/ours.time"
read -r kw ku km < "$work/kubectl.time"
docs=$(grep -c '^kind:' "$work/ours.out" || true)
echo "resources: $docs"
echo "driftless: wall ${ow}s user ${ou}s peak ${om} KB"
echo "kubectl:   wall ${kw}s user ${ku}s peak ${km} KB"
awk -v o="$ow" -v k="$kw" 'BEGIN { if (o > 0) printf "kubectl / driftless (wall): %.1fx\n", k / o }'
if cmp -s "$work/ours.out" "$work/kubectl.out"; then
  echo "outputs: byte-identical"
else
  echo "outputs: DIFFER" >&2
  diff "$work/kubectl.out" "$work/ours.out" | head -20 >&2
  exit 1
fi
