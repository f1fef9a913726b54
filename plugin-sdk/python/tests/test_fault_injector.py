"""Unit tests of the Python SDK's fault-injector side (contract 0.2.0), run
with plain CPython: ``python3 -m unittest discover -s plugin-sdk/python/tests``
(tests/suite/languages.rs runs them). The ``wit_world`` modules a component
build generates are stubbed; the draws are checked against the same numbers
as the Rust SDK's tests, so the SDKs agree.
"""

import math
import sys
import types
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _stub_wit_world() -> types.ModuleType:
    """Installs stand-ins for the modules componentize-py generates, and
    returns the stub of ``wit_world.exports.fault_injection``."""

    def module(name: str, **attrs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod
        return mod

    @dataclass
    class PluginInfo:
        name: str
        version: str
        description: str
        config_schema: Optional[str]

    class Err(Exception):
        def __init__(self, value: Any) -> None:
            super().__init__(value)
            self.value = value

    @dataclass
    class AbortResponse:
        status: int
        headers: List[Tuple[str, str]]
        body: Optional[bytes]

    @dataclass
    class Action_Forward:
        pass

    @dataclass
    class Action_Abort:
        value: AbortResponse

    @dataclass
    class Action_Reset:
        pass

    @dataclass
    class Action_Hang:
        value: int

    @dataclass
    class BodyFaults:
        throttle_bytes_per_second: Optional[int]
        truncate_after_bytes: Optional[int]
        corrupt_bytes: Optional[int]

    @dataclass
    class Decision:
        delay_request_ms: int
        delay_response_ms: int
        action: Any
        body: BodyFaults

    @dataclass
    class Request:
        method: str
        scheme: str
        authority: str
        path: str
        query: Optional[str]
        headers: List[Tuple[str, str]]
        body_size: Optional[int]
        attempt: int
        sequence: int
        elapsed_ms: int
        active_faults: int
        random: int

    module("componentize_py_types", Err=Err)
    module("wit_world")
    module("wit_world.imports")
    module("wit_world.imports.types", PluginInfo=PluginInfo)
    module("wit_world.imports.logging", Level=types.SimpleNamespace(), log=lambda *_: None)
    module("wit_world.exports")
    return module(
        "wit_world.exports.fault_injection",
        AbortResponse=AbortResponse, Action_Forward=Action_Forward, Action_Abort=Action_Abort,
        Action_Reset=Action_Reset, Action_Hang=Action_Hang, BodyFaults=BodyFaults,
        Decision=Decision, Request=Request,
    )


FI = _stub_wit_world()

from cairn_plugin import Refusal, plugin_info  # noqa: E402
from cairn_plugin.fault_injector import (  # noqa: E402
    Abort, AbortResponse, BodyFaults, Decision, Forward, Hang, Request, Reset,
    export_fault_injector,
)

U64_MAX = 2**64 - 1


class RequestHelpers(unittest.TestCase):
    def test_header_matches_names_case_insensitively_and_returns_the_first_value(self):
        request = Request(headers=[("x-tenant", "acme"), ("x-tenant", "second")])
        self.assertEqual(request.header("X-Tenant"), "acme")
        self.assertIsNone(request.header("x-other"))

    def test_chance_is_true_exactly_below_the_percent_of_the_random_range(self):
        # The same edges as the Rust SDK's tests.
        for percent, threshold in [(5, 922337203685477632), (50, 2**63),
                                   (33.3, 6142765776545280000)]:
            self.assertTrue(Request(random=threshold - 1).chance(percent), percent)
            self.assertFalse(Request(random=threshold).chance(percent), percent)
        self.assertFalse(Request(random=U64_MAX).chance(99.999))

    def test_chance_of_zero_or_nan_is_never_and_of_a_hundred_is_always(self):
        for random in [0, 1, 2**63, U64_MAX]:
            for never in [0, -3, math.nan]:
                self.assertFalse(Request(random=random).chance(never), (random, never))
            for always in [100, 250]:
                self.assertTrue(Request(random=random).chance(always), (random, always))

    def test_random_below_takes_the_high_bits_of_random_times_n(self):
        cases = [(0, 10, 0), (U64_MAX, 10, 9), (2**63, 10, 5), (U64_MAX, U64_MAX, U64_MAX - 1),
                 (U64_MAX, 1, 0), (0x9E3779B97F4A7C15, 1000, 618), (0x9E3779B97F4A7C15, 7, 4)]
        for random, n, drawn in cases:
            self.assertEqual(Request(random=random).random_below(n), drawn, (random, n))

    def test_random_below_zero_is_zero_and_below_a_negative_is_an_error(self):
        self.assertEqual(Request(random=U64_MAX).random_below(0), 0)
        with self.assertRaises(ValueError):
            Request().random_below(-1)


class DecisionBuilders(unittest.TestCase):
    def test_forward_and_pass_forward_without_delays_or_body_faults(self):
        for decision in [Decision.forward(), Decision.pass_()]:
            self.assertEqual(decision, Decision(Forward(), 0, 0, BodyFaults()))

    def test_abort_builders_fill_the_response_in_order_without_changing_the_original(self):
        base = Decision.abort(503)
        decision = (base.with_header("retry-after", "2").with_header("x-by", "cairn")
                    .with_body("try later").with_request_delay(10).with_response_delay(20))
        self.assertEqual(decision, Decision(
            Abort(AbortResponse(503, (("retry-after", "2"), ("x-by", "cairn")), b"try later")),
            10, 20, BodyFaults()))
        self.assertEqual(base, Decision(Abort(AbortResponse(503))))

    def test_headers_and_body_are_ignored_for_actions_other_than_abort(self):
        for decision in [Decision.forward(), Decision.reset(), Decision.hang(100)]:
            self.assertEqual(decision.with_header("retry-after", "1").with_body(b"x"), decision)

    def test_body_faults_combine(self):
        decision = Decision.forward().throttle(1024).truncate_after(10_000).corrupt(3)
        self.assertEqual(decision.body, BodyFaults(1024, 10_000, 3))
        self.assertEqual(Decision.hang(250).action, Hang(250))
        self.assertEqual(Decision.reset().action, Reset())


class Export(unittest.TestCase):
    def wit_request(self, **fields: Any) -> Any:
        values = dict(method="GET", scheme="http", authority="a", path="/", query=None,
                      headers=[], body_size=None, attempt=1, sequence=0, elapsed_ms=0,
                      active_faults=0, random=0)
        values.update(fields)
        return FI.Request(**values)

    def test_export_converts_the_request_in_and_the_decision_out(self):
        seen = []

        class Plugin:
            def info(self):
                return plugin_info("p", "0.1.0", "d")

            def decide(self, request, config):
                seen.append((request, config))
                return Decision.abort(599).with_header("a", "b").with_body("x").truncate_after(5)

        exported = export_fault_injector(Plugin())()
        wit = exported.decide(self.wit_request(path="/o", headers=[("k", "v")], random=7), "{}")
        self.assertEqual(seen, [(Request(path="/o", headers=[("k", "v")], authority="a", random=7), "{}")])
        self.assertEqual(wit, FI.Decision(0, 0, FI.Action_Abort(FI.AbortResponse(599, [("a", "b")], b"x")),
                                          FI.BodyFaults(None, 5, None)))
        self.assertEqual(exported.info().name, "p")

    def test_every_action_converts(self):
        for decision, action in [(Decision.forward(), FI.Action_Forward()),
                                 (Decision.reset(), FI.Action_Reset()),
                                 (Decision.hang(9), FI.Action_Hang(9))]:
            class Plugin:
                def info(self):
                    return plugin_info("p", "0.1.0", "d")

                def decide(self, request, config, decision=decision):
                    return decision

            wit = export_fault_injector(Plugin())().decide(self.wit_request(), "{}")
            self.assertEqual(wit.action, action)

    def test_a_refusal_becomes_the_contract_s_err_and_a_wrong_answer_a_type_error(self):
        class Refusing:
            def info(self):
                return plugin_info("p", "0.1.0", "d")

            def decide(self, request, config):
                raise Refusal("invalid config: nope")

        with self.assertRaises(sys.modules["componentize_py_types"].Err) as raised:
            export_fault_injector(Refusing())().decide(self.wit_request(), "{}")
        self.assertEqual(raised.exception.value, "invalid config: nope")

        class Wrong:
            def info(self):
                return plugin_info("p", "0.1.0", "d")

            def decide(self, request, config):
                return None

        with self.assertRaises(TypeError):
            export_fault_injector(Wrong())().decide(self.wit_request(), "{}")


if __name__ == "__main__":
    unittest.main()
