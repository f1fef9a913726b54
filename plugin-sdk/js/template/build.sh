#!/bin/sh
# Builds target/{{crate}}.wasm with the cairn JavaScript SDK's builder
# (cairn-js-build). The first build installs the SDK (package.json) with
# `npm install`.
set -e
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -e "$here/node_modules/.bin/cairn-js-build" ]; then
  (cd "$here" && npm install --no-audit --no-fund)
fi
exec "$here/node_modules/.bin/cairn-js-build" "$here" -o "$here/target/{{crate}}.wasm"
