"""cairn_plugin: write cairn plugins in Python with componentize-py.

The parts both worlds share live here: plugin info and logging. A validator
imports ``cairn_plugin.validator``, a fault injector
``cairn_plugin.fault_injector``; each ends with one export line::

    Validation = export_validator(MyCheck())          # world `validator`, contract 0.1.0
    FaultInjection = export_fault_injector(MyFault())  # world `fault-injector`, contract 0.2.0

Build with ``python3 plugin-sdk/python/build.py PLUGIN_DIR -o plugin.wasm``.
The build generates the ``wit_world`` modules imported below for the
plugin's world and contract version; both versions define plugin info and
logging alike.

The plugin runs in a sandbox: no files, env, network or real clock (the wall
clock reads 1970). ``print`` works and is captured (capped) by the host.
"""

from typing import Optional

from wit_world.imports import logging as _logging
from wit_world.imports import types as _types

PluginInfo = _types.PluginInfo


def plugin_info(
    name: str, version: str, description: str, config_schema: Optional[str] = None
) -> PluginInfo:
    """What the plugin says about itself (``config_schema``: JSON Schema text)."""
    return _types.PluginInfo(name, version, description, config_schema)


class Refusal(Exception):
    """Raise it to refuse the call on the plugin's own terms (for example an
    invalid config). The host reports it apart from traps and limits."""


class log:
    """Structured logging into the host's log, counted against the output cap."""

    @staticmethod
    def trace(message: str) -> None:
        _logging.log(_logging.Level.TRACE, message)

    @staticmethod
    def debug(message: str) -> None:
        _logging.log(_logging.Level.DEBUG, message)

    @staticmethod
    def info(message: str) -> None:
        _logging.log(_logging.Level.INFO, message)

    @staticmethod
    def warn(message: str) -> None:
        _logging.log(_logging.Level.WARN, message)

    @staticmethod
    def error(message: str) -> None:
        _logging.log(_logging.Level.ERROR, message)


__all__ = ["PluginInfo", "Refusal", "log", "plugin_info"]
