# Sourced by scripts/cluster/images.sh and scripts/kind/node-image.sh: image archives written without a
# container engine.
# shellcheck shell=bash

# archive TAG ROOTFS OUT.tar CONFIG_JSON: a one-layer docker-archive (what `docker save` writes).
archive() {
  local tag=$1 rootfs=$2 out=$3 config=$4 work diff cfg cfgsha
  work=$(mktemp -d)
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$work/layer.tar" .
  diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir "$work/$diff"
  mv "$work/layer.tar" "$work/$diff/layer.tar"
  cfg=$(printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$config" "$diff")
  cfgsha=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
  printf '%s' "$cfg" >"$work/$cfgsha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfgsha" "$tag" "$diff" >"$work/manifest.json"
  tar -C "$work" -cf "$out.partial" manifest.json "$cfgsha.json" "$diff"
  mv "$out.partial" "$out"
  rm -rf "$work"
}

# bundle OUT.tar ARCHIVE...: one docker-archive holding every image of the ARCHIVEs (as `docker save a b`
# writes; kind's node-image build loads the images of its four archives and pulls the rest).
bundle() {
  local out=$1 work a
  shift
  work=$(mktemp -d)
  for a in "$@"; do
    mkdir "$work/in"
    tar -C "$work/in" -xf "$a"
    mv "$work/in/manifest.json" "$work/manifest-$(basename "$a").json"
    cp -a "$work/in/." "$work/"
    rm -rf "$work/in"
  done
  # manifest.json lists every image; `repositories` (the older index, repository => tag => top layer) too,
  # first in the archive, because kind reads the tags of an archive from whichever of the two comes first
  # and, from manifest.json, only those of its first image.
  python3 - "$work" "$work"/manifest-*.json <<'PY'
import json
import sys

work, parts = sys.argv[1], sys.argv[2:]
manifest = [m for part in parts for m in json.load(open(part))]
repositories: dict[str, dict[str, str]] = {}
for m in manifest:
    for tag in m["RepoTags"]:
        repo, _, version = tag.rpartition(":")
        repositories.setdefault(repo, {})[version] = m["Layers"][-1].split("/")[0]
json.dump(manifest, open(f"{work}/manifest.json", "w"))
json.dump(repositories, open(f"{work}/repositories", "w"))
PY
  rm "$work"/manifest-*.json
  # Entries named as `docker save` names them (manifest.json, not ./manifest.json).
  (cd "$work" && { echo repositories; find . -mindepth 1 -maxdepth 1 ! -name repositories -printf '%P\n' | LC_ALL=C sort; } |
    tar -cf "$out.partial" -T -)
  mv "$out.partial" "$out"
  rm -rf "$work"
}
