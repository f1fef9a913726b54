#!/bin/sh
# Builds target/{{crate}}.wasm with the cairn Python SDK's builder
# (cairn_plugin_build). Set up once, from this directory:
#   python3 -m pip install -r requirements.txt
set -e
here="$(cd "$(dirname "$0")" && pwd)"
if ! python3 -c 'import cairn_plugin_build' 2>/dev/null; then
  echo "build.sh: the cairn Python SDK is not installed for $(command -v python3); run, in $here:" >&2
  echo "    python3 -m pip install -r requirements.txt" >&2
  exit 1
fi
exec python3 -m cairn_plugin_build "$here" -o "$here/target/{{crate}}.wasm"
