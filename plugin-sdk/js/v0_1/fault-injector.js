// cairn-plugin-sdk (JavaScript), fault-injector side for contract
// cairn:plugin@0.1.0, frozen: fault builders and `exportFaultInjector`.
//
// Fault injectors are built against contract 0.2.0 (../fault-injector.js)
// unless built with `build.mjs --contract 0.1.0`: the build then resolves
// `cairn-plugin-sdk/fault-injector` to this module, so a 0.1.0 plugin builds
// unchanged. Never change this module: 0.1.0 plugins keep building against it.
//
//   import { pluginInfo } from 'cairn-plugin-sdk/common';
//   import { delay, exportFaultInjector, none } from 'cairn-plugin-sdk/fault-injector';
//
//   export const faultInjection = exportFaultInjector({
//     info: () => pluginInfo('slow-every-tenth', '0.1.0', 'Delays every tenth request'),
//     decide: (request, config) => (request.sequence % 10n === 9n ? delay(200) : none()),
//   });
//
// `request.sequence` and `request.elapsedMs` are u64 in the contract, so they
// arrive as BigInt.

export { log, pluginInfo, Refusal } from '../common.js';

/** Forward the request untouched. */
export const none = () => ({ tag: 'none' });
/** Wait `ms` milliseconds, then forward. */
export const delay = (ms) => ({ tag: 'delay', val: ms });
/** Answer with this status (100..=999) instead of forwarding. */
export const errorResponse = (status, body) => ({ tag: 'error', val: { status, body } });
/** Close the client connection without an answer. */
export const reset = () => ({ tag: 'reset' });
/** Hold the request `ms` milliseconds, then close the connection. */
export const hang = (ms) => ({ tag: 'hang', val: ms });
/** Forward, but deliver the body at this rate (must be > 0). */
export const throttle = (bytesPerSecond) => ({ tag: 'throttle', val: bytesPerSecond });

/** The first value of a request header, matched case-insensitively. */
export function header(request, name) {
  const wanted = name.toLowerCase();
  return request.headers.find(([key]) => key.toLowerCase() === wanted)?.[1];
}

/**
 * The object to export as `faultInjection` from the plugin's entry module.
 * @param {{ info(): object, decide(request: object, config: string): object }} plugin
 */
export function exportFaultInjector(plugin) {
  return {
    info: () => plugin.info(),
    decide: (request, config) => plugin.decide(request, config),
  };
}
