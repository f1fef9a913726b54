"""The fault-injector side of the SDK (contract ``cairn:plugin@0.2.0``): the
request a plugin is asked about, decision builders and
``export_fault_injector``.

A fault injector is any object with ``info() -> PluginInfo`` and
``decide(request, config) -> Decision``::

    from cairn_plugin import plugin_info
    from cairn_plugin.fault_injector import Decision, Request, export_fault_injector

    class FlakyOrders:
        def info(self):
            return plugin_info("flaky-orders", "0.1.0", "Fails 5% of /orders requests")

        def decide(self, request: Request, config: str) -> Decision:
            if not request.path.startswith("/orders"):
                return Decision.forward()
            if request.chance(5):
                return Decision.abort(503).with_header("retry-after", "1").with_body("try again")
            return Decision.forward().with_response_delay(100)

    FaultInjection = export_fault_injector(FlakyOrders())

A decision is a request delay, then an action (``Forward``, ``Abort`` with a
response, ``Reset`` or ``Hang``), a response delay (for forward and abort)
and faults on a forwarded response's body (throttle, truncate, corrupt).
Builders return a new ``Decision``; decisions are immutable.

A plugin has no clock and no random number generator of its own: use
``Request.chance`` and ``Request.random_below``, which derive from the
request's ``random`` (itself derived from the experiment's seed), so the
same seed replays the same faults. They compute exactly what the Rust and
JavaScript SDKs compute.

Raise ``Refusal`` to refuse (an invalid config, say): the proxy then
forwards the request untouched and counts the refusal.

A 0.1.0 fault injector (``none()``, ``delay()``, ``error_response()``, ...)
is built with ``build.py --contract 0.1.0``; see ``cairn_plugin/v0_1``.
"""

from dataclasses import dataclass, field, replace
from typing import List, Optional, Protocol, Tuple, Union

from . import PluginInfo, Refusal, fail_without_result, report_exception

# 2**64 as a float: the size of the range ``random`` is drawn from.
_RANDOM_RANGE = 18446744073709551616.0


@dataclass(frozen=True)
class Request:
    """One request as cairn's fault proxy received it from a client.

    Defaults are those of a golden case's ``request.json`` that leaves the
    field out, so ``Request(path="/orders", random=7)`` is a valid request in
    a unit test.
    """

    method: str = "GET"
    """``GET``, ``POST``, ... as sent (extension methods included)."""
    scheme: str = "http"
    """Scheme of the upstream: ``http`` or ``https``."""
    authority: str = "127.0.0.1"
    """Authority of the upstream (``orders.internal:8443``)."""
    path: str = "/"
    """Path without the query (``/orders/42``), as sent."""
    query: Optional[str] = None
    """Query without the ``?`` (``expand=items``); ``None`` when absent."""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    """Headers in the order received; names are lower-case. Sensitive
    values (and credentials) arrive as ``[redacted]``."""
    body_size: Optional[int] = None
    """Size of the request body from ``content-length``; ``None`` when the
    client did not say (chunked)."""
    attempt: int = 1
    """1-based attempt number of this logical request (retries are grouped
    by the experiment's idempotency-key header)."""
    sequence: int = 0
    """0-based number of this request within the experiment."""
    elapsed_ms: int = 0
    """Milliseconds since the experiment started (plugins have no clock)."""
    active_faults: int = 0
    """Faults the proxy is applying right now."""
    random: int = 0
    """A random number in ``0..2**64`` for this request, derived from the
    experiment's seed and ``sequence``."""

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name``, matched case-insensitively;
        ``None`` when the request has no such header."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def chance(self, percent: float) -> bool:
        """Whether this request falls in the given share (in percent) of
        requests: true for ``percent``% of the possible ``random`` numbers,
        decided by ``random`` alone. ``percent`` of 0 or less (or NaN) is
        never, 100 or more is always.

        Exactly: ``random < floor(percent / 100 * 2**64)`` in 64-bit floating
        point, as in the Rust and JavaScript SDKs. Every draw on one request
        uses the same ``random``: ``chance(5)`` and ``chance(10)`` are both
        true for the lowest 5% of numbers.
        """
        percent = float(percent)
        if percent != percent or percent <= 0.0:
            return False
        if percent >= 100.0:
            return True
        return self.random < int(percent / 100.0 * _RANDOM_RANGE)

    def random_below(self, n: int) -> int:
        """A number in ``range(n)`` drawn from ``random`` (0 when ``n`` is 0):
        the high bits of ``random * n``, ``(random * n) >> 64``, as in the Rust
        and JavaScript SDKs. It uses the same ``random`` as ``chance``."""
        if n < 0:
            raise ValueError(f"random_below({n}): n must not be negative")
        return (self.random * n) >> 64


@dataclass(frozen=True)
class AbortResponse:
    """A response the proxy sends instead of forwarding the request."""

    status: int
    """Any status 100..=999, non-standard ones included (299, 520, 599)."""
    headers: Tuple[Tuple[str, str], ...] = ()
    """Extra headers (``retry-after``, ...); names and values must be valid
    HTTP. Framing headers (``content-length``, ``transfer-encoding``,
    ``connection``) are set by the proxy."""
    body: Optional[bytes] = None
    """Response body; empty when ``None``."""


@dataclass(frozen=True)
class Forward:
    """Forward the request to the upstream."""


@dataclass(frozen=True)
class Abort:
    """Answer the request with ``response`` without forwarding it."""

    response: AbortResponse


@dataclass(frozen=True)
class Reset:
    """Close the client connection abruptly (TCP reset), no answer."""


@dataclass(frozen=True)
class Hang:
    """Hold the request ``ms`` milliseconds without answering, then close the
    connection. The proxy caps the hold (the experiment's ``max-hang-ms``)."""

    ms: int


Action = Union[Forward, Abort, Reset, Hang]
"""What happens to the request after the request delay."""


@dataclass(frozen=True)
class BodyFaults:
    """Faults on a forwarded response's body; each optional. Together they
    apply as truncate, then corrupt, then throttle."""

    throttle_bytes_per_second: Optional[int] = None
    """Deliver the body at this many bytes per second (at least 1)."""
    truncate_after_bytes: Optional[int] = None
    """End the body after this many bytes."""
    corrupt_bytes: Optional[int] = None
    """Flip this many bytes of the body, at positions the proxy draws from
    the request's random number."""


@dataclass(frozen=True)
class Decision:
    """The plugin's answer for one request. Build one with ``forward``,
    ``abort``, ``reset`` or ``hang`` and refine it with the ``with_*``,
    ``throttle``, ``truncate_after`` and ``corrupt`` methods, each of which
    returns a new decision."""

    action: Action = Forward()
    """What happens after the request delay."""
    delay_request_ms: int = 0
    """Wait this long before the action."""
    delay_response_ms: int = 0
    """For forward and abort: wait this long before sending the response
    head to the client."""
    body: BodyFaults = BodyFaults()
    """Faults on a forwarded response's body."""

    @staticmethod
    def forward() -> "Decision":
        """Forward the request untouched: no delay, no body faults
        (``Decision::pass()`` in Rust; ``pass`` is a Python keyword)."""
        return Decision()

    @staticmethod
    def pass_() -> "Decision":
        """The same as ``forward()``, named after the Rust and JavaScript
        ``pass()``."""
        return Decision()

    @staticmethod
    def abort(status: int) -> "Decision":
        """Answer with ``status`` (any of 100..=999) instead of forwarding,
        with no extra headers and an empty body: add them with
        ``with_header`` and ``with_body``."""
        return Decision(action=Abort(AbortResponse(status)))

    @staticmethod
    def reset() -> "Decision":
        """Close the client connection abruptly (TCP reset), no answer."""
        return Decision(action=Reset())

    @staticmethod
    def hang(ms: int) -> "Decision":
        """Hold the request ``ms`` milliseconds without answering, then close
        the connection."""
        return Decision(action=Hang(ms))

    def with_request_delay(self, ms: int) -> "Decision":
        """Wait ``ms`` milliseconds before the action."""
        return replace(self, delay_request_ms=ms)

    def with_response_delay(self, ms: int) -> "Decision":
        """For forward and abort: wait ``ms`` milliseconds before sending the
        response head."""
        return replace(self, delay_response_ms=ms)

    def with_header(self, name: str, value: str) -> "Decision":
        """Adds a header to an abort's response; no change for other
        actions. Framing headers (``content-length``, ...) are the proxy's."""
        if not isinstance(self.action, Abort):
            return self
        response = self.action.response
        headers = response.headers + ((name, value),)
        return replace(self, action=Abort(replace(response, headers=headers)))

    def with_body(self, body: Union[bytes, bytearray, str]) -> "Decision":
        """Sets the body of an abort's response (text is sent as UTF-8); no
        change for other actions."""
        if not isinstance(self.action, Abort):
            return self
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        return replace(self, action=Abort(replace(self.action.response, body=data)))

    def throttle(self, bytes_per_second: int) -> "Decision":
        """Deliver a forwarded response's body at ``bytes_per_second`` (at
        least 1; a throttle of 0 is out of contract, use ``hang``)."""
        return replace(self, body=replace(self.body, throttle_bytes_per_second=bytes_per_second))

    def truncate_after(self, bytes_: int) -> "Decision":
        """End a forwarded response's body after ``bytes_`` bytes."""
        return replace(self, body=replace(self.body, truncate_after_bytes=bytes_))

    def corrupt(self, bytes_: int) -> "Decision":
        """Flip ``bytes_`` bytes of a forwarded response's body."""
        return replace(self, body=replace(self.body, corrupt_bytes=bytes_))


class FaultInjectorPlugin(Protocol):
    """What ``export_fault_injector`` needs from a plugin."""

    def info(self) -> PluginInfo: ...

    def decide(self, request: Request, config: str) -> Decision: ...


def _request_from_wit(request) -> Request:
    return Request(
        method=request.method,
        scheme=request.scheme,
        authority=request.authority,
        path=request.path,
        query=request.query,
        headers=[(key, value) for key, value in request.headers],
        body_size=request.body_size,
        attempt=request.attempt,
        sequence=request.sequence,
        elapsed_ms=request.elapsed_ms,
        active_faults=request.active_faults,
        random=request.random,
    )


def _decision_to_wit(fi, decision: Decision):
    """``decision`` as the contract's record (``fi``: the generated
    ``wit_world.exports.fault_injection`` module)."""
    if not isinstance(decision, Decision):
        raise TypeError(
            f"decide returned {type(decision).__name__}, not a cairn_plugin.fault_injector.Decision"
        )
    action = decision.action
    if isinstance(action, Forward):
        wit_action = fi.Action_Forward()
    elif isinstance(action, Abort):
        response = action.response
        wit_action = fi.Action_Abort(
            fi.AbortResponse(response.status, list(response.headers), response.body)
        )
    elif isinstance(action, Reset):
        wit_action = fi.Action_Reset()
    elif isinstance(action, Hang):
        wit_action = fi.Action_Hang(action.ms)
    else:
        raise TypeError(f"unknown action {action!r}: expected Forward, Abort, Reset or Hang")
    body = decision.body
    return fi.Decision(
        decision.delay_request_ms,
        decision.delay_response_ms,
        wit_action,
        fi.BodyFaults(body.throttle_bytes_per_second, body.truncate_after_bytes, body.corrupt_bytes),
    )


def export_fault_injector(plugin: FaultInjectorPlugin) -> type:
    """The class componentize-py exports as ``fault-injection``: assign it to
    a module-level ``FaultInjection`` in the app module."""
    # Imported here, not at the top, so the rest of this module works outside
    # a component build (in the SDK's own unit tests).
    from componentize_py_types import Err
    from wit_world.exports import fault_injection as fi

    class FaultInjection:
        def info(self) -> PluginInfo:
            try:
                return plugin.info()
            except Exception as exc:  # noqa: BLE001 - see fail_without_result
                fail_without_result(exc, "info")
                raise

        def decide(self, request, config: str):
            try:
                decision = plugin.decide(_request_from_wit(request), config)
            except Refusal as refusal:
                raise Err(str(refusal))
            except Err:
                raise
            except Exception as exc:  # noqa: BLE001 - any other exception is the plugin's error
                raise Err(report_exception(exc, "decide")) from None
            return _decision_to_wit(fi, decision)

    return FaultInjection


__all__ = [
    "Abort", "AbortResponse", "Action", "BodyFaults", "Decision", "Forward", "Hang",
    "Request", "Reset", "export_fault_injector",
]
