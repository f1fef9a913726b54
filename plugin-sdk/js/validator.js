// cairn-plugin-sdk (JavaScript), validator side: typed access to the change,
// builders for findings and verdicts, and `exportValidator`.
//
//   import { pluginInfo } from 'cairn-plugin-sdk/common';
//   import { error, exportValidator, verdict } from 'cairn-plugin-sdk/validator';
//
//   export const validation = exportValidator({
//     info: () => pluginInfo('no-empty-documents', '0.1.0', 'Fails on empty documents'),
//     validate(change, at, config) {
//       const findings = change.documents()
//         .filter((doc) => change.after(doc.path)?.length === 0)
//         .map((doc) => error('empty/document', `${doc.path} is empty`, { document: doc.path }));
//       return verdict(findings);
//     },
//   });

import * as wit from 'cairn:plugin/change@0.1.0';
import { guarded, guardedInfo } from './common.js';

export { log, pluginInfo, Refusal } from './common.js';

/**
 * @typedef {'added' | 'modified' | 'deleted' | 'unchanged'} DocStatus
 * @typedef {{ path: string, mediaType: string, status: DocStatus }} Document
 *   `mediaType` is exactly what the host sent: one of the `MediaType` values,
 *   assigned from the file extension, or any string a change bundle set
 *   (`image/png`). Test it with `parseMediaType(doc.mediaType)`.
 * @typedef {typeof MediaType[keyof typeof MediaType]} KnownMediaType
 * @typedef {{ name: string, index: number, environment: string,
 *             rolloutPercent: number, changeId: string }} Checkpoint
 * @typedef {'info' | 'warning' | 'error'} Severity
 * @typedef {'pass' | 'warn' | 'fail' | 'inconclusive'} Outcome
 * @typedef {{ document: string, pointer?: string, line?: number, column?: number }} Location
 * @typedef {{ rule: string, severity: Severity, message: string,
 *             location?: Location, hint?: string }} Finding
 * @typedef {{ outcome: Outcome, findings: Finding[], summary?: string }} Verdict
 * @typedef {{ document?: string, pointer?: string, line?: number,
 *             column?: number, hint?: string }} Where
 */

/**
 * The media types the host assigns a document from its file extension. A
 * change bundle may override a document's media type with any other string
 * (`image/png`).
 */
export const MediaType = Object.freeze({
  /** `.json` files. */
  JSON: 'application/json',
  /** `.yaml` and `.yml` files. */
  YAML: 'application/yaml',
  /** `.toml` files. */
  TOML: 'application/toml',
  /** `.txt`, `.md`, `.csv` and `.sql` files. */
  TEXT: 'text/plain',
  /** Files with any other extension. */
  OCTET_STREAM: 'application/octet-stream',
});

const KNOWN_MEDIA_TYPES = new Set(Object.values(MediaType));

/**
 * The `MediaType` value that `mediaType` names, or `mediaType` unchanged if
 * it names none of them. The five match case-insensitively (ASCII), ignoring
 * parameters after a `;` and spaces or tabs around the type:
 * `parseMediaType('Application/JSON; charset=utf-8') === MediaType.JSON`.
 * @param {string} mediaType
 * @returns {KnownMediaType | string}
 */
export function parseMediaType(mediaType) {
  const essence = mediaType.split(';', 1)[0].replace(/^[ \t]+|[ \t]+$/g, '');
  if (/^[\x00-\x7f]*$/.test(essence)) {
    const lower = essence.toLowerCase();
    if (KNOWN_MEDIA_TYPES.has(lower)) {
      return lower;
    }
  }
  return mediaType;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lossyUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * The change under validation, read through the host (there is no
 * filesystem in the sandbox).
 */
export class Change {
  /** Every document of the change, sorted by path. @returns {Document[]} */
  documents() {
    return wit.documents();
  }

  /** Content before the change; undefined if added or unknown. @returns {Uint8Array | undefined} */
  before(path) {
    return wit.before(path);
  }

  /** Content after the change; undefined if deleted or unknown. @returns {Uint8Array | undefined} */
  after(path) {
    return wit.after(path);
  }

  /** Content before the change as text (invalid UTF-8 replaced). */
  beforeText(path) {
    const bytes = this.before(path);
    return bytes === undefined ? undefined : lossyUtf8.decode(bytes);
  }

  /** Content after the change as text (invalid UTF-8 replaced). */
  afterText(path) {
    const bytes = this.after(path);
    return bytes === undefined ? undefined : lossyUtf8.decode(bytes);
  }

  /** Metrics observed for this checkpoint. @returns {{name: string, value: number}[]} */
  metrics() {
    return wit.metrics();
  }

  /** The value of one metric, if it was observed. */
  metric(name) {
    return this.metrics().find((m) => m.name === name)?.value;
  }
}

/** Decodes UTF-8 text, or returns undefined when the bytes are not UTF-8. */
export function utf8OrUndefined(bytes) {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * A finding; `where.document` (with an RFC 6901 `pointer` or a 1-based
 * `line`/`column`) says where it points.
 * @param {string} rule @param {Severity} severity @param {string} message
 * @param {Where} [where]
 * @returns {Finding}
 */
export function finding(rule, severity, message, where = {}) {
  const { document, pointer, line, column, hint } = where;
  const location =
    document === undefined ? undefined : { document, pointer, line, column };
  return { rule, severity, message, location, hint };
}

/** An error finding (the verdict fails). */
export const error = (rule, message, where) => finding(rule, 'error', message, where);
/** A warning finding (the verdict warns). */
export const warning = (rule, message, where) => finding(rule, 'warning', message, where);
/** An informational finding. */
export const info = (rule, message, where) => finding(rule, 'info', message, where);

/**
 * Outcome from the worst finding: any error fails, any warning warns,
 * otherwise (info or nothing) passes.
 * @param {Finding[]} findings @param {string} [summary] @returns {Verdict}
 */
export function verdict(findings, summary) {
  let outcome = 'pass';
  if (findings.some((f) => f.severity === 'error')) {
    outcome = 'fail';
  } else if (findings.some((f) => f.severity === 'warning')) {
    outcome = 'warn';
  }
  return { outcome, findings, summary };
}

/** The validator could not decide (a metric it needs is missing, ...). */
export function inconclusive(summary) {
  return { outcome: 'inconclusive', findings: [], summary };
}

/**
 * The object to export as `validation` from the plugin's entry module.
 * @param {{ info(): object, validate(change: Change, at: Checkpoint, config: string): Verdict }} plugin
 */
export function exportValidator(plugin) {
  const change = new Change();
  return {
    info: () => guardedInfo(() => plugin.info()),
    validate: (at, config) => guarded('validate', () => plugin.validate(change, at, config)),
  };
}
