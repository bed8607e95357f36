#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the kustomize parity fixtures.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../tests/fixtures/kustomize"
for t in smp json6902 kustomization yaml yaml_depth; do mkdir -p "$here/corpus/$t"; done
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
    # yaml_depth: a limit byte (4 levels), then the file
    { printf '\003'; cat "$f"; } > "$here/corpus/yaml_depth/$name-$(basename "$f")"
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

# Seeds for the signature, git-object and SOPS targets, made with the real
# tools (ssh-keygen, gpg, git, sops + age) in a throwaway directory. Each
# tool that is missing only skips its seeds.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in allowed_signers sshsig openpgp_sig git_objects sops; do mkdir -p "$here/corpus/$t"; done
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@b> 1 +0000\ncommitter a <a@b> 1 +0000\n\nmsg\n' > "$tmp/payload"
if command -v ssh-keygen >/dev/null; then
  for kt in ed25519 rsa ecdsa; do
    ssh-keygen -q -t "$kt" -N '' -C "$kt@example.com" -f "$tmp/id_$kt"
    ssh-keygen -q -Y sign -n git -f "$tmp/id_$kt" "$tmp/payload"
    { cat "$tmp/payload.sig"; printf '\0'; cat "$tmp/payload"; } > "$here/corpus/sshsig/$kt"
    rm -f "$tmp/payload.sig"
    key=$(cut -d' ' -f1,2 "$tmp/id_$kt.pub")
    printf '%s@example.com %s\n' "$kt" "$key" > "$here/corpus/allowed_signers/$kt-plain"
    printf '# comment\n%s@example.com,*@example.org namespaces="git",valid-after="20240101",valid-before="20300101Z" %s\n' "$kt" "$key" > "$here/corpus/allowed_signers/$kt-options"
    printf '*.example.com cert-authority,namespaces="git,file" %s\n"quoted name" %s\n' "$key" "$key" > "$here/corpus/allowed_signers/$kt-ca"
  done
fi
if command -v gpg >/dev/null; then
  export GNUPGHOME="$tmp/gnupg"
  mkdir -m 700 "$GNUPGHOME"
  for algo in ed25519 rsa2048; do
    gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-gen-key "$algo <$algo@example.com>" "$algo" sign 1y 2>/dev/null
    gpg --batch --quiet --armor --local-user "$algo@example.com" --detach-sign -o "$tmp/$algo.asc" "$tmp/payload"
    gpg --batch --quiet --armor --export "$algo@example.com" > "$tmp/$algo.pub"
    { cat "$tmp/$algo.asc"; printf '\0'; cat "$tmp/$algo.pub"; } > "$here/corpus/openpgp_sig/$algo"
  done
fi
if command -v git >/dev/null && [ -f "$tmp/id_ed25519" ]; then
  repo="$tmp/repo"
  git init -q "$repo"
  git -C "$repo" -c user.name=a -c user.email=a@b -c gpg.format=ssh -c user.signingkey="$tmp/id_ed25519" \
    commit -q --allow-empty -S -m signed
  git -C "$repo" -c user.name=a -c user.email=a@b -c gpg.format=ssh -c user.signingkey="$tmp/id_ed25519" \
    tag -s -m tag v1.0.0
  git -C "$repo" -c user.name=a -c user.email=a@b commit -q --allow-empty -m unsigned
  git -C "$repo" cat-file commit HEAD~1 > "$here/corpus/git_objects/signed-commit"
  git -C "$repo" cat-file commit HEAD > "$here/corpus/git_objects/unsigned-commit"
  git -C "$repo" cat-file tag v1.0.0 > "$here/corpus/git_objects/signed-tag"
fi
# The sops target's throwaway key (fuzz/fuzz_targets/sops.rs) has this
# recipient; the first byte of a seed picks the format (0 YAML, 1 JSON,
# 2 dotenv, 3 ini).
if command -v sops >/dev/null; then
  recipient=age1wfn32qxsp5qwvsa853ldajjrh30etnmk0svknc968xg4mg2wkapqk78nus
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n  list: [a, 1, true]\n' > "$tmp/s.yaml"
  printf '{"data": {"a": "b", "n": 1.5, "l": [null, false]}}\n' > "$tmp/s.json"
  printf 'USER=admin\nPASS=secret\n' > "$tmp/s.env"
  printf '[db]\nuser = admin\npass = secret\n' > "$tmp/s.ini"
  i=0
  for f in s.yaml s.json s.env s.ini; do
    if out=$(sops --encrypt --age "$recipient" "$tmp/$f" 2>/dev/null); then
      { printf "\\$(printf '%03o' "$i")"; printf '%s\n' "$out"; } > "$here/corpus/sops/$f"
    fi
    i=$((i + 1))
  done
  # encrypted_regex as Flux users write it for Secrets
  if out=$(sops --encrypt --age "$recipient" --encrypted-regex '^(data|stringData)$' "$tmp/s.yaml" 2>/dev/null); then
    { printf '\000'; printf '%s\n' "$out"; } > "$here/corpus/sops/s-regex.yaml"
  fi
fi
echo "seeded: $(ls "$here/corpus/sshsig" | wc -l) sshsig, $(ls "$here/corpus/openpgp_sig" | wc -l) openpgp, $(ls "$here/corpus/git_objects" | wc -l) git objects, $(ls "$here/corpus/sops" | wc -l) sops"
