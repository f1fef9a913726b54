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

/** Structured logging into the host's log, counted against the output cap. */
export const log = {
  trace: (message) => wasmLog('trace', message),
  debug: (message) => wasmLog('debug', message),
  info: (message) => wasmLog('info', message),
  warn: (message) => wasmLog('warn', message),
  error: (message) => wasmLog('error', message),
};
