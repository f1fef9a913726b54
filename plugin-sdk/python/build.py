#!/usr/bin/env python3
"""Builds a Python plugin with the SDK of this cairn checkout, without
installing it: ``python3 plugin-sdk/python/build.py PLUGIN_DIR [-o OUT.wasm] ...``.

The builder is the package ``cairn_plugin_build`` (installed, it is the
``cairn-py-build`` command); ``--help`` lists its options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cairn_plugin_build import main  # noqa: E402

main()
