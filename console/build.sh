#!/usr/bin/env bash
# Builds the console into dist/ (index.html, app.js, app.css), which gridcase embeds at compile
# time. Reproducible: the same lockfile gives byte-identical output (no timestamps, no hashes in
# names, no source maps). Needs Node.js >= 20.19 and the npm registry; nothing else.
set -euo pipefail
cd "$(dirname "$0")"

npm ci --ignore-scripts --no-audit --no-fund
# ../proto -> src/gen (kept in the tree; regenerated here so a proto change shows in the diff)
./node_modules/.bin/buf generate
./node_modules/.bin/tsc --noEmit -p .

rm -rf dist
mkdir -p dist
./node_modules/.bin/esbuild app=src/main.tsx \
  --bundle --minify --format=esm --target=es2022 --platform=browser \
  --charset=utf8 --legal-comments=eof \
  --jsx=automatic --jsx-import-source=preact \
  --alias:leaflet=leaflet/dist/leaflet-src.esm.js \
  --loader:.png=dataurl --loader:.svg=dataurl \
  --entry-names=[name] --outdir=dist --log-level=warning
cp src/index.html dist/index.html

for f in dist/*; do
  printf '%-16s %8d bytes  %7d gz\n' "$(basename "$f")" "$(wc -c <"$f")" "$(gzip -9c "$f" | wc -c)"
done
