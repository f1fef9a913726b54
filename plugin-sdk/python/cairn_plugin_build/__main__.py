"""``python3 -m cairn_plugin_build``: the same as the ``cairn-py-build`` command."""

from cairn_plugin_build import main

main()
