#!/bin/sh
# Builds target/{{crate}}.wasm (needs, once: npm ci --prefix {{sdk}}/js)
set -e
here="$(cd "$(dirname "$0")" && pwd)"
exec node "{{sdk}}/js/build.mjs" "$here" -o "$here/target/{{crate}}.wasm"
