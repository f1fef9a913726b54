// secrets-scan (JavaScript): flags likely secrets in added and modified
// documents. The same check as plugins/secrets-scan (Rust) and
// plugins/secrets-scan-py; the rules are specified in
// plugins/secrets-scan/src/lib.rs and the three must agree on
// tests/conformance/secrets-scan.

import { Refusal, log, pluginInfo } from 'cairn-plugin-sdk/common';
import {
  MediaType,
  error,
  exportValidator,
  parseMediaType,
  utf8OrUndefined,
  verdict,
} from 'cairn-plugin-sdk/validator';

const CONFIG_SCHEMA =
  '{"type":"object","properties":{"allow":{"type":"array","items":{"type":"string"}}},' +
  '"additionalProperties":false}';
const HINT = 'move the value to the secret store and reference it (${secret:NAME})';
const INVALID_CONFIG = 'invalid config: expected {"allow": [document paths]}';

// [rule, message, pattern], checked in this order on each value or line.
const PATTERNS = [
  ['secrets/private-key', 'a private key is embedded', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['secrets/aws-access-key', 'an AWS access key id is embedded', /AKIA[0-9A-Z]{16}/],
];
// The `secrets/token` rule: the first kind (in this order) that matches.
const TOKENS = [
  ['GitHub', /ghp_[A-Za-z0-9]{36}/],
  ['GitLab', /glpat-[A-Za-z0-9_-]{20}/],
  ['Slack', /xox[abprs]-[A-Za-z0-9-]{10,}/],
  ['Stripe', /sk_live_[A-Za-z0-9]{24,}/],
];
const KEY_WORDS = ['password', 'passwd', 'secret', 'token', 'apikey', 'accesskey', 'privatekey', 'credential'];
const PLACEHOLDER_PREFIXES = ['${', '{{', '<', '$(', 'env:', 'vault:', 'secret:'];
const PLACEHOLDERS = ['changeme', 'redacted', 'true', 'false', 'null', 'none'];
const MIN_CREDENTIAL_CHARS = 8;
const KEY_CHARS = /^[A-Za-z0-9_.-]+$/;

/** Length in characters (code points), as Rust and Python count. */
const chars = (text) => [...text].length;

/** [rule, message, index] of each pattern rule found in text. */
function matches(text) {
  const found = [];
  for (const [rule, message, pattern] of PATTERNS) {
    const m = pattern.exec(text);
    if (m) found.push([rule, message, m.index]);
  }
  for (const [kind, pattern] of TOKENS) {
    const m = pattern.exec(text);
    if (m) {
      found.push(['secrets/token', `a ${kind} token is embedded`, m.index]);
      break;
    }
  }
  return found;
}

function isCredentialKey(key) {
  const folded = key.toLowerCase().replace(/[-_.]/g, '');
  return KEY_WORDS.some((word) => folded.includes(word));
}

function isLiteralCredential(value) {
  if (chars(value) < MIN_CREDENTIAL_CHARS || /^[0-9]+$/.test(value)) return false;
  if (PLACEHOLDER_PREFIXES.some((p) => value.startsWith(p))) return false;
  if (PLACEHOLDERS.includes(value.toLowerCase())) return false;
  return !/^[*xX]+$/.test(value);
}

const credentialMessage = (key) => `\`${key}\` holds a literal credential`;
const pointerToken = (key) => key.replaceAll('~', '~0').replaceAll('/', '~1');

function scanJson(path, value, pointer, key, out) {
  if (Array.isArray(value)) {
    value.forEach((v, i) => scanJson(path, v, `${pointer}/${i}`, key, out));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      scanJson(path, v, `${pointer}/${pointerToken(k)}`, k, out);
    }
  } else if (typeof value === 'string') {
    const found = matches(value);
    for (const [rule, message] of found) {
      out.push(error(rule, message, { document: path, pointer, hint: HINT }));
    }
    if (found.length === 0 && isCredentialKey(key) && isLiteralCredential(value)) {
      out.push(error('secrets/hardcoded-credential', credentialMessage(key), { document: path, pointer, hint: HINT }));
    }
  }
}

const trimBlank = (text) => text.replace(/^[ \t]+|[ \t]+$/g, '');

function stripQuotes(text) {
  if (text.length >= 2 && text[0] === text[text.length - 1] && (text[0] === '"' || text[0] === "'")) {
    return text.slice(1, -1);
  }
  return text;
}

/** [key, value, index of the key] of a `key: value` or `key = value` line. */
function keyValue(line) {
  let start = line.length - line.replace(/^[ \t]+/, '').length;
  if (line.startsWith('- ', start)) start += 2;
  const rest = line.slice(start);
  const cuts = [rest.indexOf(':'), rest.indexOf('=')].filter((i) => i >= 0);
  if (cuts.length === 0) return undefined;
  const cut = Math.min(...cuts);
  const key = stripQuotes(trimBlank(rest.slice(0, cut)));
  if (!KEY_CHARS.test(key)) return undefined;
  let value = trimBlank(rest.slice(cut + 1));
  if (value.endsWith(',')) value = value.slice(0, -1).replace(/[ \t]+$/, '');
  return [key, stripQuotes(value), start];
}

function scanLines(path, text, out) {
  text.split('\n').forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const number = index + 1;
    const column = (i) => chars(line.slice(0, i)) + 1;
    const found = matches(line);
    for (const [rule, message, i] of found) {
      out.push(error(rule, message, { document: path, line: number, column: column(i), hint: HINT }));
    }
    if (found.length > 0) return;
    const pair = keyValue(line);
    if (pair && isCredentialKey(pair[0]) && isLiteralCredential(pair[1])) {
      out.push(error('secrets/hardcoded-credential', credentialMessage(pair[0]), {
        document: path, line: number, column: column(pair[2]), hint: HINT,
      }));
    }
  });
}

function compareFindings(a, b) {
  const key = (f) => [f.location.document, f.location.pointer ?? '', f.location.line ?? 0, f.location.column ?? 0, f.rule];
  const [x, y] = [key(a), key(b)];
  for (let i = 0; i < x.length; i++) {
    if (x[i] < y[i]) return -1;
    if (x[i] > y[i]) return 1;
  }
  return 0;
}

function readAllow(config) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch {
    throw new Refusal(INVALID_CONFIG);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)
      || Object.keys(parsed).some((k) => k !== 'allow')) {
    throw new Refusal(INVALID_CONFIG);
  }
  const allow = parsed.allow ?? [];
  if (!Array.isArray(allow) || !allow.every((p) => typeof p === 'string')) {
    throw new Refusal(INVALID_CONFIG);
  }
  return allow;
}

export const validation = exportValidator({
  info: () => pluginInfo('secrets-scan', '0.1.0',
    'Flags likely secrets (keys, tokens, passwords) in changed documents', CONFIG_SCHEMA),

  validate(change, at, config) {
    const allow = readAllow(config);
    const findings = [];
    let scanned = 0;
    for (const doc of change.documents()) {
      if (!(doc.status === 'added' || doc.status === 'modified') || allow.includes(doc.path)) continue;
      const bytes = change.after(doc.path);
      if (bytes === undefined) continue;
      const text = utf8OrUndefined(bytes);
      if (text === undefined) continue; // binary: not a config document
      scanned += 1;
      let parsed;
      if (parseMediaType(doc.mediaType) === MediaType.JSON) {
        try {
          parsed = { value: JSON.parse(text) };
        } catch {
          parsed = undefined;
        }
      }
      if (parsed !== undefined) {
        scanJson(doc.path, parsed.value, '', '', findings);
      } else {
        scanLines(doc.path, text, findings);
      }
    }
    findings.sort(compareFindings);
    log.debug(`scanned ${scanned} document(s) at ${at.name}`);
    return verdict(findings, `scanned ${scanned} document(s), found ${findings.length} likely secret(s)`);
  },
});
