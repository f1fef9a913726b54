"""The fault-injector side of the SDK for contract ``cairn:plugin@0.1.0``,
frozen: fault builders and ``export_fault_injector``.

Fault injectors are built against contract 0.2.0 (``cairn_plugin/fault_injector.py``)
unless built with ``build.py --contract 0.1.0``: the build then stages this
module as ``cairn_plugin.fault_injector``, so a 0.1.0 plugin builds unchanged.
Never change this module: 0.1.0 plugins keep building against it.

A fault injector is any object with ``info() -> PluginInfo`` and
``decide(request, config) -> Fault``::

    from cairn_plugin import plugin_info
    from cairn_plugin.fault_injector import RequestInfo, delay, export_fault_injector, none

    class SlowEveryTenth:
        def info(self):
            return plugin_info("slow-every-tenth", "0.1.0", "Delays every tenth request")

        def decide(self, request: RequestInfo, config: str):
            return delay(200) if request.sequence % 10 == 9 else none()

    FaultInjection = export_fault_injector(SlowEveryTenth())
"""

from typing import Optional, Protocol

from componentize_py_types import Err
from wit_world.exports import fault_injection as _fi

from . import PluginInfo, Refusal

RequestInfo = _fi.RequestInfo
ErrorResponse = _fi.ErrorResponse
Fault = _fi.Fault


def none() -> Fault:
    """Forward the request untouched."""
    return _fi.Fault_None_()


def delay(ms: int) -> Fault:
    """Wait ``ms`` milliseconds, then forward."""
    return _fi.Fault_Delay(ms)


def error_response(status: int, body: Optional[str] = None) -> Fault:
    """Answer with this status (100..=999) instead of forwarding."""
    return _fi.Fault_Error(_fi.ErrorResponse(status, body))


def reset() -> Fault:
    """Close the client connection without an answer."""
    return _fi.Fault_Reset()


def hang(ms: int) -> Fault:
    """Hold the request ``ms`` milliseconds, then close the connection."""
    return _fi.Fault_Hang(ms)


def throttle(bytes_per_second: int) -> Fault:
    """Forward, but deliver the body at this rate (must be > 0)."""
    return _fi.Fault_Throttle(bytes_per_second)


def header(request: RequestInfo, name: str) -> Optional[str]:
    """The first value of a request header, matched case-insensitively."""
    wanted = name.lower()
    for key, value in request.headers:
        if key.lower() == wanted:
            return value
    return None


class FaultInjectorPlugin(Protocol):
    def info(self) -> PluginInfo: ...

    def decide(self, request: RequestInfo, config: str) -> Fault: ...


def export_fault_injector(plugin: FaultInjectorPlugin) -> type:
    """The class componentize-py exports as ``fault-injection``: assign it to
    a module-level ``FaultInjection`` in the app module."""

    class FaultInjection:
        def info(self) -> PluginInfo:
            return plugin.info()

        def decide(self, request: RequestInfo, config: str) -> Fault:
            try:
                return plugin.decide(request, config)
            except Refusal as refusal:
                raise Err(str(refusal))

    return FaultInjection


__all__ = [
    "ErrorResponse", "Fault", "RequestInfo", "delay", "error_response",
    "export_fault_injector", "hang", "header", "none", "reset", "throttle",
]
