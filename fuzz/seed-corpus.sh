#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the kustomize parity fixtures.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../tests/fixtures/kustomize"
for t in smp json6902 kustomization yaml; do mkdir -p "$here/corpus/$t"; done
n=0
for case in "$fixtures"/*/; do
  name=$(basename "$case")
  for k in "$case"kustomization.yaml "$case"kustomization.yml "$case"Kustomization; do
    [ -f "$k" ] && cp "$k" "$here/corpus/kustomization/$name"
  done
  for f in "$case"*.yaml; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    cp "$f" "$here/corpus/yaml/$name-$(basename "$f")"
  done
done
# base + patch pairs for the mergers: every resource file followed by
# every patch-looking file of the same case.
for case in "$fixtures"/*/; do
  name=$(basename "$case")
  for f in "$case"*.yaml; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in kustomization.yaml) continue ;; esac
    { cat "$f"; printf '\n---\n'; cat "$f"; } > "$here/corpus/smp/$name-$(basename "$f")"
  done
done
i=0
for ops in "$fixtures"/*/ops.yaml; do
  [ -f "$ops" ] || continue
  i=$((i + 1))
  { printf 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n---\n'; cat "$ops"; } > "$here/corpus/json6902/ops-$i"
done
printf 'a: {b: [1, 2]}\n---\n- {op: add, path: /a/b/-, value: 3}\n- {op: remove, path: /a/b/0}\n' > "$here/corpus/json6902/seed-1"
echo "seeded: $(ls "$here/corpus/kustomization" | wc -l) kustomizations, $n yaml files"
