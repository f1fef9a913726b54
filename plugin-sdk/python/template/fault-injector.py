"""{{name}}: a cairn fault injector written in Python (contract cairn:plugin@0.2.0).

Answers a share of requests with an error and delays the others' responses,
deterministically: the request's random number decides, so the same
experiment seed replays the same faults. Requests with an `x-cairn-bypass`
header are forwarded untouched.

Config (JSON, every key optional):
    {"abort-percent": 5,    share of requests answered instead of forwarded (0 to 100)
     "status": 503,         status of those answers (100 to 999)
     "delay-ms": 100}       how long the other responses are held

Build:  ./build.sh            (writes target/{{crate}}.wasm)
Test:   cairn plugin test target/{{crate}}.wasm --cases samples
"""

import json

from cairn_plugin import Refusal, plugin_info
from cairn_plugin.fault_injector import Decision, Request, export_fault_injector

DEFAULTS = {"abort-percent": 5, "status": 503, "delay-ms": 100}


def read_config(text: str) -> dict:
    try:
        given = json.loads(text)
    except ValueError as err:
        raise Refusal(f"invalid config: {err}")
    if not isinstance(given, dict):
        raise Refusal("invalid config: expected a JSON object")
    for key in given:
        if key not in DEFAULTS:
            raise Refusal(f"invalid config: unknown key {key}")
    config = {**DEFAULTS, **given}
    percent = config["abort-percent"]
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
        raise Refusal("invalid config: abort-percent must be a number from 0 to 100")
    status = config["status"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise Refusal("invalid config: status must be an integer from 100 to 999")
    delay = config["delay-ms"]
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay < 2**32:
        raise Refusal("invalid config: delay-ms must be an integer from 0 to 4294967295")
    return config


class AbortOrDelay:
    def info(self):
        return plugin_info(
            "{{name}}", "0.1.0", "Aborts a share of requests and delays the other responses"
        )

    def decide(self, request: Request, config: str) -> Decision:
        cfg = read_config(config)
        if request.header("x-cairn-bypass") is not None:
            return Decision.forward()
        if request.chance(cfg["abort-percent"]):
            return (
                Decision.abort(cfg["status"])
                .with_header("retry-after", "1")
                .with_body("injected by {{name}}")
            )
        return Decision.forward().with_response_delay(cfg["delay-ms"])


FaultInjection = export_fault_injector(AbortOrDelay())
