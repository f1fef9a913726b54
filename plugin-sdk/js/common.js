// cairn-plugin-sdk (JavaScript): the parts both worlds share, plugin info
// and logging. A validator imports `cairn-plugin-sdk/validator`, a fault
// injector `cairn-plugin-sdk/fault-injector`; the build
// (`node plugin-sdk/js/build.mjs PLUGIN_DIR`) bundles them into the plugin.
//
// The plugin runs in a sandbox: no files, env, network or real clock (the
// wall clock reads 1970). `console.log` works and is captured (capped).

// No version here: the build (build.mjs) adds the version of the contract
// the plugin is built against (validators 0.1.0, fault injectors 0.2.0).
import { log as wasmLog } from 'cairn:plugin/logging';

/**
 * What the plugin says about itself.
 * @param {string} name
 * @param {string} version
 * @param {string} description
 * @param {string} [configSchema] JSON Schema (as text) of the config
 */
export function pluginInfo(name, version, description, configSchema) {
  return { name, version, description, configSchema };
}

/**
 * Throw it to refuse the call on the plugin's own terms (for example an
 * invalid config). The host reports it apart from traps and limits.
 */
export class Refusal extends Error {
  constructor(message) {
    super(message);
    this.name = 'Refusal';
    // componentize-js turns a thrown error's `payload` into the `err` value.
    this.payload = message;
  }
}

/**
 * The line table the build appends to the bundle (`globalThis.__cairnLines`):
 * for each line of the bundle, the source positions on it ([column, file
 * index, line]), so an error points at `app.js line 12`, not at the bundle.
 * @returns {{ files: string[], own: boolean[], lines: number[][][] } | undefined}
 */
function lineTable() {
  return globalThis.__cairnLines;
}

/** A stack frame: `name@file:line:column` (SpiderMonkey) or `at name (file:line:column)` (V8). */
const FRAME = /^\s*(?:at\s+)?(?:(.*?)@|(.*?)\s+\()?(.*?):(\d+):(\d+)\)?\s*$/;

/** The frames of `err.stack`, mapped to the plugin's own files where the build left a table. */
function frames(err) {
  const table = lineTable();
  const stack = typeof err?.stack === 'string' ? err.stack : '';
  const found = [];
  for (const text of stack.split('\n')) {
    const match = FRAME.exec(text);
    if (!match) {
      continue;
    }
    const name = (match[1] ?? match[2] ?? '').trim();
    const file = match[3];
    const line = Number(match[4]);
    const column = Number(match[5]) - 1;
    const positions = /(^|\/)plugin\.js$/.test(file) ? (table?.lines[line - 1] ?? []) : [];
    // The last source position at or before the column (the first if none).
    const mapped = positions.findLast(([start]) => start <= column) ?? positions[0];
    if (mapped) {
      const [, fileIndex, sourceLine] = mapped;
      found.push({ name, file: table.files[fileIndex], line: sourceLine, own: table.own[fileIndex] });
    } else {
      found.push({ name, file, line, own: false });
    }
  }
  return found;
}

/**
 * One line for an uncaught error: its type, message and the plugin's own
 * file and line where it was thrown (or the plugin's line that called the
 * code that threw), e.g. `TypeError: settings.steps is undefined (at
 * app.js line 12, in validate)`.
 * @param {unknown} err @param {string} where the export (`validate`, ...)
 */
export function describeError(err, where) {
  let text;
  if (err instanceof Error) {
    text = err.message ? `${err.name}: ${err.message}` : err.name;
  } else {
    text = `uncaught ${typeof err}: ${String(err)}`;
  }
  const all = frames(err);
  const frame = all.find((f) => f.own) ?? all[0];
  if (frame === undefined) {
    return `${text} (in ${where})`;
  }
  const name = frame.name ? `, in ${frame.name}` : '';
  return `${text} (at ${frame.file} line ${frame.line}${name})`;
}

/** The error the host receives as the plugin's own error result (`err`). */
class PluginError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PluginError';
    this.payload = message;
  }
}

function asErrorResult(err, where) {
  if (err instanceof Refusal || (typeof err === 'object' && err !== null && 'payload' in err)) {
    return err;
  }
  const line = describeError(err, where);
  const stack = frames(err)
    .map((f) => `  ${f.name || '<anonymous>'} (${f.file}:${f.line})`)
    .join('\n');
  console.error(stack ? `${line}\n${stack}` : line);
  return new PluginError(line);
}

/**
 * Runs one call of an export with an error result (`validate`, `decide`):
 * an uncaught error, thrown or rejected, becomes the plugin's own error
 * result, readable (see `describeError`); a `Refusal` stays as it is.
 * @template T @param {string} where @param {() => T} call @returns {T}
 */
export function guarded(where, call) {
  let result;
  try {
    result = call();
  } catch (err) {
    throw asErrorResult(err, where);
  }
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    return result.then(undefined, (err) => {
      throw asErrorResult(err, where);
    });
  }
  return result;
}

/**
 * Runs `info`, which has no error result: an uncaught error is rethrown as
 * one readable line (see `describeError`), which the engine writes to
 * stderr before it stops the call (the host reports a trap with the last
 * lines of stderr).
 * @template T @param {() => T} call @returns {T}
 */
export function guardedInfo(call) {
  try {
    return call();
  } catch (err) {
    // Thrown as a bare string: the engine prints it (quoted), with no stack.
    throw describeError(err, 'info');
  }
}

/** Structured logging into the host's log, counted against the output cap. */
export const log = {
  trace: (message) => wasmLog('trace', message),
  debug: (message) => wasmLog('debug', message),
  info: (message) => wasmLog('info', message),
  warn: (message) => wasmLog('warn', message),
  error: (message) => wasmLog('error', message),
};
