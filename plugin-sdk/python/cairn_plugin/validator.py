"""The validator side of the SDK: typed access to the change, builders for
findings and verdicts, and ``export_validator``.

A validator is any object with ``info() -> PluginInfo`` and
``validate(change, at, config) -> Verdict``::

    from cairn_plugin import plugin_info
    from cairn_plugin.validator import Change, Checkpoint, error, export_validator, verdict

    class NoEmptyDocuments:
        def info(self):
            return plugin_info("no-empty-documents", "0.1.0", "Fails on empty documents")

        def validate(self, change: Change, at: Checkpoint, config: str):
            findings = [
                error("empty/document", f"{doc.path} is empty", document=doc.path)
                for doc in change.documents()
                if change.after(doc.path) == b""
            ]
            return verdict(findings)

    Validation = export_validator(NoEmptyDocuments())
"""

from dataclasses import dataclass
from enum import Enum
from typing import List, Optional, Protocol, Union

from componentize_py_types import Err
from wit_world.imports import change as _change
from wit_world.imports import types as _types

from . import PluginInfo, Refusal, fail_without_result, report_exception

Checkpoint = _types.Checkpoint
Finding = _types.Finding
Location = _types.Location
Outcome = _types.Outcome
Severity = _types.Severity
Verdict = _types.Verdict
DocStatus = _change.DocStatus
Metric = _change.Metric


class MediaType(str, Enum):
    """The media types the host assigns a document from its file extension.

    Members are strings, so they compare equal to ``Document.media_type``
    when it holds exactly that string (``doc.media_type == MediaType.JSON``);
    ``MediaType.parse`` also accepts other spellings of them. A change bundle
    may override the media type with any other string (``image/png``).
    """

    JSON = "application/json"
    """``.json`` files."""
    YAML = "application/yaml"
    """``.yaml`` and ``.yml`` files."""
    TOML = "application/toml"
    """``.toml`` files."""
    TEXT = "text/plain"
    """``.txt``, ``.md``, ``.csv`` and ``.sql`` files."""
    OCTET_STREAM = "application/octet-stream"
    """Files with any other extension."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, media_type: str) -> Union["MediaType", str]:
        """The ``MediaType`` that ``media_type`` names, or ``media_type``
        unchanged if it names none of them.

        The five match case-insensitively (ASCII), ignoring parameters after
        a ``;`` and spaces or tabs around the type:
        ``MediaType.parse("Application/JSON; charset=utf-8") is MediaType.JSON``.
        """
        essence = media_type.split(";", 1)[0].strip(" \t")
        if essence.isascii():
            try:
                return cls(essence.lower())
            except ValueError:
                pass
        return media_type


@dataclass
class Document:
    """One document of the change."""

    path: str
    """Relative, ``/``-separated path (``workflows/orders.json``)."""
    media_type: str
    """The media type exactly as the host sent it: one of the ``MediaType``
    values, which the host assigns from the file extension, or any string a
    change bundle set (``image/png``). Test it with ``media``, ``is_json``,
    ``is_yaml`` or ``is_toml`` rather than comparing strings."""
    status: DocStatus

    @property
    def is_added(self) -> bool:
        return self.status == DocStatus.ADDED

    @property
    def is_modified(self) -> bool:
        return self.status == DocStatus.MODIFIED

    @property
    def is_deleted(self) -> bool:
        return self.status == DocStatus.DELETED

    @property
    def media(self) -> Union[MediaType, str]:
        """The media type, parsed: see ``MediaType.parse``."""
        return MediaType.parse(self.media_type)

    @property
    def is_json(self) -> bool:
        """The media type is ``application/json``."""
        return self.media is MediaType.JSON

    @property
    def is_yaml(self) -> bool:
        """The media type is ``application/yaml``."""
        return self.media is MediaType.YAML

    @property
    def is_toml(self) -> bool:
        """The media type is ``application/toml``."""
        return self.media is MediaType.TOML


class Change:
    """The change under validation, read through the host (there is no
    filesystem in the sandbox)."""

    def documents(self) -> List[Document]:
        """Every document of the change, sorted by path."""
        return [Document(d.path, d.media_type, d.status) for d in _change.documents()]

    def before(self, path: str) -> Optional[bytes]:
        """Content before the change; ``None`` if added or unknown."""
        return _change.before(path)

    def after(self, path: str) -> Optional[bytes]:
        """Content after the change; ``None`` if deleted or unknown."""
        return _change.after(path)

    def before_text(self, path: str) -> Optional[str]:
        """Content before the change as text (invalid UTF-8 replaced)."""
        data = self.before(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def after_text(self, path: str) -> Optional[str]:
        """Content after the change as text (invalid UTF-8 replaced)."""
        data = self.after(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def metrics(self) -> List[Metric]:
        """Metrics observed for this checkpoint."""
        return _change.metrics()

    def metric(self, name: str) -> Optional[float]:
        """The value of one metric, if it was observed."""
        for metric in self.metrics():
            if metric.name == name:
                return metric.value
        return None


def finding(
    rule: str,
    severity: Severity,
    message: str,
    *,
    document: Optional[str] = None,
    pointer: Optional[str] = None,
    line: Optional[int] = None,
    column: Optional[int] = None,
    hint: Optional[str] = None,
) -> Finding:
    """A finding; ``document`` (with an RFC 6901 ``pointer`` or a 1-based
    ``line``/``column``) says where it points."""
    location = None
    if document is not None:
        location = Location(document, pointer, line, column)
    return Finding(rule, severity, message, location, hint)


def error(rule: str, message: str, **where) -> Finding:
    """An error finding (the verdict fails). Keywords as for ``finding``."""
    return finding(rule, Severity.ERROR, message, **where)


def warning(rule: str, message: str, **where) -> Finding:
    """A warning finding (the verdict warns). Keywords as for ``finding``."""
    return finding(rule, Severity.WARNING, message, **where)


def info(rule: str, message: str, **where) -> Finding:
    """An informational finding. Keywords as for ``finding``."""
    return finding(rule, Severity.INFO, message, **where)


def verdict(findings: List[Finding], summary: Optional[str] = None) -> Verdict:
    """Outcome from the worst finding: any error fails, any warning warns,
    otherwise (info or nothing) passes."""
    severities = {f.severity for f in findings}
    if Severity.ERROR in severities:
        outcome = Outcome.FAIL
    elif Severity.WARNING in severities:
        outcome = Outcome.WARN
    else:
        outcome = Outcome.PASS
    return Verdict(outcome, list(findings), summary)


def inconclusive(summary: str) -> Verdict:
    """The validator could not decide (a metric it needs is missing, ...)."""
    return Verdict(Outcome.INCONCLUSIVE, [], summary)


class ValidatorPlugin(Protocol):
    def info(self) -> PluginInfo: ...

    def validate(self, change: Change, at: Checkpoint, config: str) -> Verdict: ...


def export_validator(plugin: ValidatorPlugin) -> type:
    """The class componentize-py exports as ``validation``: assign it to a
    module-level ``Validation`` in the app module."""

    class Validation:
        def info(self) -> PluginInfo:
            try:
                return plugin.info()
            except Exception as exc:  # noqa: BLE001 - see fail_without_result
                fail_without_result(exc, "info")
                raise

        def validate(self, at: Checkpoint, config: str) -> Verdict:
            try:
                return plugin.validate(Change(), at, config)
            except Refusal as refusal:
                raise Err(str(refusal))
            except Err:
                raise
            except Exception as exc:  # noqa: BLE001 - any other exception is the plugin's error
                # The plugin's own error result, readable: type, message and
                # the plugin's file and line (the traceback goes to stderr).
                raise Err(report_exception(exc, "validate")) from None

    return Validation


__all__ = [
    "Change", "Checkpoint", "DocStatus", "Document", "Finding", "Location", "MediaType",
    "Metric", "Outcome", "Severity", "Verdict", "error", "export_validator", "finding",
    "inconclusive", "info", "verdict", "warning",
]
