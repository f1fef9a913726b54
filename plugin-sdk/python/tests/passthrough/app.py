"""A pass-through fault injector written in Python (contract
cairn:plugin@0.2.0), for cairn's benchmark and test suite: forwards every
request untouched, whatever the config. What it measures is the cost of
asking a Python plugin, nothing else (the Rust twin is
tests/guests/passthrough-injector)."""

from cairn_plugin import plugin_info
from cairn_plugin.fault_injector import Decision, Request, export_fault_injector


class Passthrough:
    def info(self):
        return plugin_info(
            "passthrough-injector-py", "0.1.0", "Forwards every request untouched"
        )

    def decide(self, request: Request, config: str) -> Decision:
        return Decision.forward()


FaultInjection = export_fault_injector(Passthrough())
