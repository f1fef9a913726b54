// cairn-plugin-sdk (JavaScript), fault-injector side (contract
// cairn:plugin@0.2.0): the request a plugin is asked about, decision
// builders and `exportFaultInjector`.
//
//   import { pluginInfo } from 'cairn-plugin-sdk/common';
//   import { Decision, exportFaultInjector } from 'cairn-plugin-sdk/fault-injector';
//
//   export const faultInjection = exportFaultInjector({
//     info: () => pluginInfo('flaky-orders', '0.1.0', 'Fails 5% of /orders requests'),
//     decide(request, config) {
//       if (!request.path.startsWith('/orders')) return Decision.pass();
//       if (request.chance(5)) {
//         return Decision.abort(503).withHeader('retry-after', '1').withBody('try again');
//       }
//       return Decision.pass().withResponseDelay(100);
//     },
//   });
//
// A decision is a request delay, then an action (forward, abort with a
// response, reset or hang), a response delay (for forward and abort) and
// faults on a forwarded response's body (throttle, truncate, corrupt).
// Builders return a new `Decision`; decisions are never changed in place.
//
// A plugin has no clock and no random number generator of its own: use
// `request.chance` and `request.randomBelow`, which derive from the request's
// `random` (itself derived from the experiment's seed), so the same seed
// replays the same faults. They compute exactly what the Rust and Python
// SDKs compute.
//
// Throw `new Refusal(...)` to refuse (an invalid config, say): the proxy then
// forwards the request untouched and counts the refusal.
//
// The contract's u64 fields (`bodySize`, `sequence`, `elapsedMs`, `random`)
// are BigInts; u32 fields are numbers.
//
// A 0.1.0 fault injector (`none()`, `delay()`, `errorResponse()`, ...) is
// built with `build.mjs --contract 0.1.0`; see v0_1/fault-injector.js.

export { log, pluginInfo, Refusal } from './common.js';
import { guarded, guardedInfo } from './common.js';

/** 2^64 as a number: the size of the range `random` is drawn from. */
const RANDOM_RANGE = 18446744073709551616;

/**
 * One request as cairn's fault proxy received it from a client.
 *
 * The constructor takes the fields (missing ones get the defaults of a
 * golden case's `request.json`), so `new Request({ path: '/orders', random: 7n })`
 * is a valid request in a unit test.
 */
export class Request {
  /**
   * @param {object} [fields]
   * @param {string} [fields.method] `GET`, `POST`, ... as sent.
   * @param {string} [fields.scheme] Scheme of the upstream: `http` or `https`.
   * @param {string} [fields.authority] Authority of the upstream (`orders.internal:8443`).
   * @param {string} [fields.path] Path without the query (`/orders/42`).
   * @param {string} [fields.query] Query without the `?`; undefined when absent.
   * @param {Array<[string, string]>} [fields.headers] In the order received;
   *   names lower-case, sensitive values `[redacted]`.
   * @param {bigint} [fields.bodySize] `content-length`; undefined when not given.
   * @param {number} [fields.attempt] 1-based attempt of this logical request.
   * @param {bigint} [fields.sequence] 0-based number of the request within the experiment.
   * @param {bigint} [fields.elapsedMs] Milliseconds since the experiment started.
   * @param {number} [fields.activeFaults] Faults the proxy is applying right now.
   * @param {bigint} [fields.random] A random number in 0..2^64 for this request,
   *   derived from the experiment's seed and `sequence`.
   */
  constructor(fields = {}) {
    this.method = fields.method ?? 'GET';
    this.scheme = fields.scheme ?? 'http';
    this.authority = fields.authority ?? '127.0.0.1';
    this.path = fields.path ?? '/';
    this.query = fields.query ?? undefined;
    this.headers = (fields.headers ?? []).map(([name, value]) => [name, value]);
    this.bodySize = fields.bodySize == null ? undefined : BigInt(fields.bodySize);
    this.attempt = fields.attempt ?? 1;
    this.sequence = BigInt(fields.sequence ?? 0n);
    this.elapsedMs = BigInt(fields.elapsedMs ?? 0n);
    this.activeFaults = fields.activeFaults ?? 0;
    this.random = BigInt(fields.random ?? 0n);
  }

  /**
   * The first value of header `name`, matched case-insensitively; undefined
   * when the request has no such header.
   * @param {string} name
   * @returns {string | undefined}
   */
  header(name) {
    const wanted = name.toLowerCase();
    return this.headers.find(([key]) => key.toLowerCase() === wanted)?.[1];
  }

  /**
   * Whether this request falls in the given share (in percent) of requests:
   * true for `percent`% of the possible `random` numbers, decided by `random`
   * alone. `percent` of 0 or less (or NaN) is never, 100 or more is always.
   *
   * Exactly: `random < floor(percent / 100 * 2^64)` in 64-bit floating point,
   * as in the Rust and Python SDKs. Every draw on one request uses the same
   * `random`: `chance(5)` and `chance(10)` are both true for the lowest 5%.
   * @param {number} percent
   * @returns {boolean}
   */
  chance(percent) {
    const share = Number(percent);
    if (!(share > 0)) {
      return false;
    }
    if (share >= 100) {
      return true;
    }
    return this.random < BigInt(Math.trunc((share / 100) * RANDOM_RANGE));
  }

  /**
   * A number in `0..n` drawn from `random` (0 when `n` is 0): the high bits of
   * `random * n`, `(random * n) >> 64`, as in the Rust and Python SDKs. It
   * uses the same `random` as `chance`. Returns a BigInt for a BigInt `n`, a
   * number for a number `n` (pass a BigInt above 2^53).
   * @template {number | bigint} N
   * @param {N} n
   * @returns {N}
   */
  randomBelow(n) {
    const big = BigInt(n);
    if (big < 0n) {
      throw new RangeError(`randomBelow(${n}): n must not be negative`);
    }
    const drawn = (this.random * big) >> 64n;
    return typeof n === 'bigint' ? drawn : Number(drawn);
  }
}

/**
 * @typedef {{ status: number, headers: Array<[string, string]>, body?: Uint8Array }} AbortResponse
 *   A response the proxy sends instead of forwarding: any status 100..=999;
 *   extra headers (framing ones are the proxy's); the body, empty when
 *   undefined.
 * @typedef {{ tag: 'forward' } | { tag: 'abort', val: AbortResponse } |
 *           { tag: 'reset' } | { tag: 'hang', val: number }} Action
 *   What happens after the request delay (`hang`: milliseconds to hold the
 *   request before closing the connection).
 * @typedef {{ throttleBytesPerSecond?: number, truncateAfterBytes?: bigint,
 *             corruptBytes?: number }} BodyFaults
 *   Faults on a forwarded response's body; together they apply as truncate,
 *   then corrupt, then throttle.
 */

const encoder = new TextEncoder();

/**
 * The plugin's answer for one request. Build one with `Decision.pass`,
 * `Decision.abort`, `Decision.reset` or `Decision.hang` and refine it with the
 * `with*`, `throttle`, `truncateAfter` and `corrupt` methods, each of which
 * returns a new decision.
 */
export class Decision {
  /**
   * @param {object} [fields]
   * @param {number} [fields.delayRequestMs] Wait this long before the action.
   * @param {number} [fields.delayResponseMs] For forward and abort: wait this
   *   long before sending the response head.
   * @param {Action} [fields.action] Default: forward.
   * @param {BodyFaults} [fields.body] Default: none.
   */
  constructor(fields = {}) {
    this.delayRequestMs = fields.delayRequestMs ?? 0;
    this.delayResponseMs = fields.delayResponseMs ?? 0;
    this.action = fields.action ?? { tag: 'forward' };
    this.body = { ...(fields.body ?? {}) };
    Object.freeze(this);
  }

  /** Forward the request untouched: no delay, no body faults. */
  static pass() {
    return new Decision();
  }

  /**
   * Answer with `status` (any of 100..=999) instead of forwarding, with no
   * extra headers and an empty body: add them with `withHeader` and
   * `withBody`.
   * @param {number} status
   */
  static abort(status) {
    return new Decision({ action: { tag: 'abort', val: { status, headers: [], body: undefined } } });
  }

  /** Close the client connection abruptly (TCP reset), no answer. */
  static reset() {
    return new Decision({ action: { tag: 'reset' } });
  }

  /**
   * Hold the request `ms` milliseconds without answering, then close the
   * connection. The proxy caps the hold (the experiment's `max-hang-ms`).
   * @param {number} ms
   */
  static hang(ms) {
    return new Decision({ action: { tag: 'hang', val: ms } });
  }

  /** @param {object} changes */
  #with(changes) {
    return new Decision({ ...this, ...changes });
  }

  /**
   * Wait `ms` milliseconds before the action.
   * @param {number} ms
   */
  withRequestDelay(ms) {
    return this.#with({ delayRequestMs: ms });
  }

  /**
   * For forward and abort: wait `ms` milliseconds before sending the
   * response head.
   * @param {number} ms
   */
  withResponseDelay(ms) {
    return this.#with({ delayResponseMs: ms });
  }

  /**
   * Adds a header to an abort's response; no change for other actions.
   * Framing headers (`content-length`, ...) are the proxy's.
   * @param {string} name
   * @param {string} value
   */
  withHeader(name, value) {
    if (this.action.tag !== 'abort') {
      return this;
    }
    const response = this.action.val;
    const headers = [...response.headers, [String(name), String(value)]];
    return this.#with({ action: { tag: 'abort', val: { ...response, headers } } });
  }

  /**
   * Sets the body of an abort's response (a string is sent as UTF-8); no
   * change for other actions.
   * @param {string | Uint8Array | ArrayLike<number>} body
   */
  withBody(body) {
    if (this.action.tag !== 'abort') {
      return this;
    }
    const bytes = typeof body === 'string' ? encoder.encode(body) : Uint8Array.from(body);
    return this.#with({ action: { tag: 'abort', val: { ...this.action.val, body: bytes } } });
  }

  /**
   * Deliver a forwarded response's body at `bytesPerSecond` (at least 1; a
   * throttle of 0 is out of contract, use `hang`).
   * @param {number} bytesPerSecond
   */
  throttle(bytesPerSecond) {
    return this.#with({ body: { ...this.body, throttleBytesPerSecond: bytesPerSecond } });
  }

  /**
   * End a forwarded response's body after `bytes` bytes.
   * @param {number | bigint} bytes
   */
  truncateAfter(bytes) {
    return this.#with({ body: { ...this.body, truncateAfterBytes: BigInt(bytes) } });
  }

  /**
   * Flip `bytes` bytes of a forwarded response's body, at positions the proxy
   * draws from the request's random number.
   * @param {number} bytes
   */
  corrupt(bytes) {
    return this.#with({ body: { ...this.body, corruptBytes: bytes } });
  }
}

/**
 * `decision` as the contract's record, in the shape componentize-js lowers.
 * @param {Decision} decision
 */
function toWit(decision) {
  if (!(decision instanceof Decision)) {
    throw new TypeError(`decide returned ${typeof decision}, not a Decision`);
  }
  const { action, body } = decision;
  let witAction;
  switch (action.tag) {
    case 'forward':
    case 'reset':
      witAction = { tag: action.tag };
      break;
    case 'hang':
      witAction = { tag: 'hang', val: action.val };
      break;
    case 'abort':
      witAction = {
        tag: 'abort',
        val: {
          status: action.val.status,
          headers: action.val.headers.map(([name, value]) => [name, value]),
          body: action.val.body,
        },
      };
      break;
    default:
      throw new TypeError(`unknown action ${action.tag}: expected forward, abort, reset or hang`);
  }
  return {
    delayRequestMs: decision.delayRequestMs,
    delayResponseMs: decision.delayResponseMs,
    action: witAction,
    body: {
      throttleBytesPerSecond: body.throttleBytesPerSecond,
      truncateAfterBytes: body.truncateAfterBytes === undefined ? undefined : BigInt(body.truncateAfterBytes),
      corruptBytes: body.corruptBytes,
    },
  };
}

/**
 * The object to export as `faultInjection` from the plugin's entry module.
 * @param {{ info(): object, decide(request: Request, config: string): Decision }} plugin
 */
export function exportFaultInjector(plugin) {
  return {
    info: () => guardedInfo(() => plugin.info()),
    decide: (request, config) =>
      guarded('decide', () => toWit(plugin.decide(new Request(request), config))),
  };
}
