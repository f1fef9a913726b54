#!/bin/sh
# Builds target/{{crate}}.wasm (needs: pip install -r {{sdk}}/python/requirements.txt)
set -e
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 "{{sdk}}/python/build.py" "$here" -o "$here/target/{{crate}}.wasm"
