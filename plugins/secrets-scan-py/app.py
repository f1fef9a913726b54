"""secrets-scan (Python): flags likely secrets in added and modified documents.

The same check as plugins/secrets-scan (Rust) and plugins/secrets-scan-js;
the rules are specified in plugins/secrets-scan/src/lib.rs and the three must
agree on tests/conformance/secrets-scan.
"""

import json
import re
from typing import List, Optional, Tuple

from cairn_plugin import Refusal, log, plugin_info
from cairn_plugin.validator import Change, Checkpoint, Finding, error, export_validator, verdict

CONFIG_SCHEMA = (
    '{"type":"object","properties":{"allow":{"type":"array","items":{"type":"string"}}},'
    '"additionalProperties":false}'
)
HINT = "move the value to the secret store and reference it (${secret:NAME})"
INVALID_CONFIG = 'invalid config: expected {"allow": [document paths]}'

# (rule, message, pattern), checked in this order on each value or line.
PATTERNS = [
    ("secrets/private-key", "a private key is embedded",
     re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("secrets/aws-access-key", "an AWS access key id is embedded",
     re.compile(r"AKIA[0-9A-Z]{16}")),
]
# The `secrets/token` rule: the first kind (in this order) that matches.
TOKENS = [
    ("GitHub", re.compile(r"ghp_[A-Za-z0-9]{36}")),
    ("GitLab", re.compile(r"glpat-[A-Za-z0-9_-]{20}")),
    ("Slack", re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("Stripe", re.compile(r"sk_live_[A-Za-z0-9]{24,}")),
]
KEY_WORDS = ["password", "passwd", "secret", "token", "apikey", "accesskey",
             "privatekey", "credential"]
PLACEHOLDER_PREFIXES = ["${", "{{", "<", "$(", "env:", "vault:", "secret:"]
PLACEHOLDERS = ["changeme", "redacted", "true", "false", "null", "none"]
MIN_CREDENTIAL_LEN = 8
KEY_CHARS = re.compile(r"[A-Za-z0-9_.-]+")


def matches(text: str) -> List[Tuple[str, str, int]]:
    """(rule, message, index) of each pattern rule found in text."""
    found = []
    for rule, message, pattern in PATTERNS:
        m = pattern.search(text)
        if m:
            found.append((rule, message, m.start()))
    for kind, pattern in TOKENS:
        m = pattern.search(text)
        if m:
            found.append(("secrets/token", f"a {kind} token is embedded", m.start()))
            break
    return found


def is_credential_key(key: str) -> bool:
    folded = key.lower().replace("-", "").replace("_", "").replace(".", "")
    return any(word in folded for word in KEY_WORDS)


def is_literal_credential(value: str) -> bool:
    if len(value) < MIN_CREDENTIAL_LEN or value.isascii() and value.isdigit():
        return False
    if any(value.startswith(prefix) for prefix in PLACEHOLDER_PREFIXES):
        return False
    if value.lower() in PLACEHOLDERS:
        return False
    return not all(c in "*xX" for c in value)


def credential_message(key: str) -> str:
    return f"`{key}` holds a literal credential"


def pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def scan_json(path: str, value, pointer: str, key: str, out: List[Finding]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            scan_json(path, v, f"{pointer}/{pointer_token(k)}", k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            scan_json(path, v, f"{pointer}/{i}", key, out)
    elif isinstance(value, str):
        found = matches(value)
        for rule, message, _ in found:
            out.append(error(rule, message, document=path, pointer=pointer, hint=HINT))
        if not found and is_credential_key(key) and is_literal_credential(value):
            out.append(error("secrets/hardcoded-credential", credential_message(key),
                             document=path, pointer=pointer, hint=HINT))


def strip_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def key_value(line: str) -> Optional[Tuple[str, str, int]]:
    """(key, value, 0-based key index) of a `key: value` or `key = value` line."""
    start = len(line) - len(line.lstrip(" \t"))
    if line.startswith("- ", start):
        start += 2
    rest = line[start:]
    cut = min((i for i in (rest.find(":"), rest.find("=")) if i >= 0), default=-1)
    if cut < 0:
        return None
    key = strip_quotes(rest[:cut].strip(" \t"))
    if not KEY_CHARS.fullmatch(key):
        return None
    value = rest[cut + 1:].strip(" \t")
    if value.endswith(","):
        value = value[:-1].rstrip(" \t")
    return key, strip_quotes(value), start


def scan_lines(path: str, text: str, out: List[Finding]) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        found = matches(line)
        for rule, message, index in found:
            out.append(error(rule, message, document=path, line=number, column=index + 1,
                             hint=HINT))
        if found:
            continue
        pair = key_value(line)
        if pair and is_credential_key(pair[0]) and is_literal_credential(pair[1]):
            out.append(error("secrets/hardcoded-credential", credential_message(pair[0]),
                             document=path, line=number, column=pair[2] + 1, hint=HINT))


def reject_constant(name: str):
    raise ValueError(f"not JSON: {name}")


def sort_key(f: Finding):
    loc = f.location
    return (loc.document, loc.pointer or "", loc.line or 0, loc.column or 0, f.rule)


def read_allow(config: str) -> List[str]:
    try:
        parsed = json.loads(config, parse_constant=reject_constant)
    except ValueError:
        raise Refusal(INVALID_CONFIG)
    if not isinstance(parsed, dict) or set(parsed) - {"allow"}:
        raise Refusal(INVALID_CONFIG)
    allow = parsed.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(p, str) for p in allow):
        raise Refusal(INVALID_CONFIG)
    return allow


class SecretsScan:
    def info(self):
        return plugin_info("secrets-scan", "0.1.0",
                           "Flags likely secrets (keys, tokens, passwords) in changed documents",
                           CONFIG_SCHEMA)

    def validate(self, change: Change, at: Checkpoint, config: str):
        allow = read_allow(config)
        findings: List[Finding] = []
        scanned = 0
        for doc in change.documents():
            if not (doc.is_added or doc.is_modified) or doc.path in allow:
                continue
            data = change.after(doc.path)
            if data is None:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary: not a config document
            scanned += 1
            parsed = None
            if doc.is_json:
                try:
                    parsed = (json.loads(text, parse_constant=reject_constant),)
                except ValueError:
                    parsed = None
            if parsed is not None:
                scan_json(doc.path, parsed[0], "", "", findings)
            else:
                scan_lines(doc.path, text, findings)
        findings.sort(key=sort_key)
        log.debug(f"scanned {scanned} document(s) at {at.name}")
        return verdict(findings,
                       f"scanned {scanned} document(s), found {len(findings)} likely secret(s)")


Validation = export_validator(SecretsScan())
