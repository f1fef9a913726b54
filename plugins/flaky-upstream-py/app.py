"""flaky-upstream (Python): a fault injector that makes a connected service
look flaky, deterministically, so an experiment can be replayed.

A contract 0.1.0 plugin, kept so to test that 0.1.0 fault injectors keep
building and loading: build it with
``python3 plugin-sdk/python/build.py plugins/flaky-upstream-py --contract 0.1.0``.

Config (JSON, every key optional)::

    {"paths": ["/orders"],   # only requests whose path starts with one of these
     "warmup_ms": 0,         # no faults before this much of the experiment
     "error_every": 10,      # every Nth matching request fails ...
     "status": 503,          # ... with this status
     "delay_ms": 0,          # the others are delayed this long (0: untouched)
     "max_active": 5}        # no new fault while the proxy applies this many
"""

import json

from cairn_plugin import Refusal, plugin_info
from cairn_plugin.fault_injector import RequestInfo, delay, error_response, export_fault_injector, none

DEFAULTS = {"paths": ["/"], "warmup_ms": 0, "error_every": 10, "status": 503,
            "delay_ms": 0, "max_active": 5}
CONFIG_SCHEMA = json.dumps({
    "type": "object",
    "properties": {
        "paths": {"type": "array", "items": {"type": "string"}},
        "warmup_ms": {"type": "integer", "minimum": 0},
        "error_every": {"type": "integer", "minimum": 1},
        "status": {"type": "integer", "minimum": 100, "maximum": 999},
        "delay_ms": {"type": "integer", "minimum": 0},
        "max_active": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
})


def read_config(config: str) -> dict:
    try:
        given = json.loads(config)
    except ValueError as err:
        raise Refusal(f"invalid config: {err}")
    if not isinstance(given, dict):
        raise Refusal("invalid config: expected an object")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise Refusal(f"invalid config: unknown key {unknown[0]}")
    merged = {**DEFAULTS, **given}
    for key in ("warmup_ms", "error_every", "status", "delay_ms", "max_active"):
        value = merged[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Refusal(f"invalid config: {key} must be a non-negative integer")
    if merged["error_every"] < 1:
        raise Refusal("invalid config: error_every must be at least 1")
    if not 100 <= merged["status"] <= 999:
        raise Refusal("invalid config: status must be within 100..=999")
    paths = merged["paths"]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise Refusal("invalid config: paths must be a list of strings")
    return merged


class FlakyUpstream:
    def info(self):
        return plugin_info("flaky-upstream", "0.1.0",
                           "Fails every Nth request and delays the others, deterministically",
                           CONFIG_SCHEMA)

    def decide(self, request: RequestInfo, config: str):
        cfg = read_config(config)
        if not any(request.path.startswith(prefix) for prefix in cfg["paths"]):
            return none()
        if request.elapsed_ms < cfg["warmup_ms"] or request.active_faults >= cfg["max_active"]:
            return none()
        if request.sequence % cfg["error_every"] == cfg["error_every"] - 1:
            return error_response(cfg["status"], "injected by cairn flaky-upstream")
        if cfg["delay_ms"] > 0:
            return delay(cfg["delay_ms"])
        return none()


FaultInjection = export_fault_injector(FlakyUpstream())
