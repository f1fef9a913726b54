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

import os
import re
import sys
import traceback
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


# componentize-py mounts each `-p` folder at /0, /1, ... (the build script
# passes one: the plugin's folder with the SDK staged into it), the standard
# library at /python and the generated bindings at /world and /bundled.
_MOUNT = re.compile(r"^/\d+/")
_SDK_PREFIX = "cairn_plugin/"


def _plugin_path(filename: str) -> Optional[str]:
    """The plugin's own file name (``app.py``, ``rules/check.py``) for a
    traceback frame's file, or None for the SDK, the standard library and
    the generated bindings."""
    match = _MOUNT.match(filename)
    if match is None:
        return None
    relative = filename[match.end():]
    return None if relative.startswith(_SDK_PREFIX) else relative


def _short_path(filename: str) -> str:
    match = _MOUNT.match(filename)
    return filename[match.end():] if match else filename


def describe_exception(exc: BaseException, where: str) -> str:
    """One line for an uncaught exception: its type, message and the
    plugin's own file and line where it was raised (or the plugin's line
    that called the code that raised it), e.g.
    ``KeyError: 'steps' (at app.py line 12, in validate)``."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [frame for frame in frames if _plugin_path(frame.filename) is not None]
    frame = own[-1] if own else (frames[-1] if frames else None)
    message = str(exc)
    text = type(exc).__name__ + (f": {message}" if message else "")
    if frame is None:
        return f"{text} (in {where})"
    return f"{text} (at {_short_path(frame.filename)} line {frame.lineno}, in {frame.name})"


def report_exception(exc: BaseException, where: str) -> str:
    """Writes the exception's traceback (with the plugin's own file names)
    to stderr, which the host captures into its log, and returns
    ``describe_exception``'s line."""
    lines = ["Traceback (most recent call last):\n"]
    for frame in traceback.extract_tb(exc.__traceback__):
        lines.append(f'  File "{_short_path(frame.filename)}", line {frame.lineno}, in {frame.name}\n')
    lines.extend(traceback.format_exception_only(type(exc), exc))
    try:
        sys.stderr.write("".join(lines))
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - reporting must never fail the call
        pass
    return describe_exception(exc, where)


def fail_without_result(exc: BaseException, where: str) -> None:
    """For an export with no error result (``info``): writes the traceback
    and, last, ``describe_exception``'s line to stderr, then stops the call
    (the host reports a trap with the last lines of stderr)."""
    line = report_exception(exc, where)
    try:
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    os.abort()


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
