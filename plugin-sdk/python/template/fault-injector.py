"""{{name}}: a cairn fault injector written in Python.

Build:  ./build.sh            (writes target/{{crate}}.wasm)
"""

import json

from cairn_plugin import Refusal, plugin_info
from cairn_plugin.fault_injector import RequestInfo, delay, export_fault_injector, none


class DelayEveryNth:
    def info(self):
        return plugin_info("{{name}}", "0.1.0", "Delays every Nth request (config: every, delay_ms)")

    def decide(self, request: RequestInfo, config: str):
        try:
            cfg = {"every": 10, "delay_ms": 200, **json.loads(config)}
        except (ValueError, TypeError):
            raise Refusal("invalid config: expected {\"every\": N, \"delay_ms\": MS}")
        if not isinstance(cfg["every"], int) or cfg["every"] < 1:
            raise Refusal("invalid config: every must be a positive integer")
        if request.sequence % cfg["every"] == cfg["every"] - 1:
            return delay(cfg["delay_ms"])
        return none()


FaultInjection = export_fault_injector(DelayEveryNth())
