"""A hostile validator written in Python, for cairn's test suite
(tests/suite/languages.rs): the config's `mode` picks the misbehaviour."""

import json
import time

from cairn_plugin import plugin_info
from cairn_plugin.validator import Change, Checkpoint, verdict, export_validator


class Hostile:
    def info(self):
        return plugin_info("hostile-py", "0.1.0", "Misbehaves on purpose")

    def validate(self, change: Change, at: Checkpoint, config: str):
        mode = json.loads(config).get("mode", "behave")
        if mode == "loop":
            while True:
                pass
        if mode == "sleep":
            time.sleep(10)
        if mode == "nap":
            time.sleep(0.1)
            return verdict([], "woke up")
        if mode == "raise":
            # An uncaught KeyError: the SDK makes it the plugin's error result.
            return verdict([], f"{len(json.loads(config)['steps'])} step(s)")
        if mode == "alloc":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        return verdict([], f"behaved with {len(change.documents())} document(s)")


Validation = export_validator(Hostile())
