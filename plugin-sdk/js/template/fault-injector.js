// {{name}}: a cairn fault injector written in JavaScript (contract
// cairn:plugin@0.2.0).
//
// Answers a share of requests with an error and delays the others'
// responses, deterministically: the request's random number decides, so the
// same experiment seed replays the same faults. Requests with an
// `x-cairn-bypass` header are forwarded untouched.
//
// Config (JSON, every key optional):
//   {"abort-percent": 5,    share of requests answered instead of forwarded (0 to 100)
//    "status": 503,         status of those answers (100 to 999)
//    "delay-ms": 100}       how long the other responses are held
//
// Build:  ./build.sh            (writes target/{{crate}}.wasm)
// Test:   cairn plugin test target/{{crate}}.wasm --cases samples

import { Refusal, pluginInfo } from 'cairn-plugin-sdk/common';
import { Decision, exportFaultInjector } from 'cairn-plugin-sdk/fault-injector';

const DEFAULTS = { 'abort-percent': 5, status: 503, 'delay-ms': 100 };

function readConfig(text) {
  let given;
  try {
    given = JSON.parse(text);
  } catch (err) {
    throw new Refusal(`invalid config: ${err.message}`);
  }
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new Refusal('invalid config: expected a JSON object');
  }
  for (const key of Object.keys(given)) {
    if (!(key in DEFAULTS)) {
      throw new Refusal(`invalid config: unknown key ${key}`);
    }
  }
  const config = { ...DEFAULTS, ...given };
  const percent = config['abort-percent'];
  if (typeof percent !== 'number' || !(percent >= 0 && percent <= 100)) {
    throw new Refusal('invalid config: abort-percent must be a number from 0 to 100');
  }
  const { status } = config;
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new Refusal('invalid config: status must be an integer from 100 to 999');
  }
  const delay = config['delay-ms'];
  if (!Number.isInteger(delay) || delay < 0 || delay > 4294967295) {
    throw new Refusal('invalid config: delay-ms must be an integer from 0 to 4294967295');
  }
  return config;
}

export const faultInjection = exportFaultInjector({
  info: () =>
    pluginInfo('{{name}}', '0.1.0', 'Aborts a share of requests and delays the other responses'),

  decide(request, config) {
    const cfg = readConfig(config);
    if (request.header('x-cairn-bypass') !== undefined) {
      return Decision.pass();
    }
    if (request.chance(cfg['abort-percent'])) {
      return Decision.abort(cfg.status)
        .withHeader('retry-after', '1')
        .withBody('injected by {{name}}');
    }
    return Decision.pass().withResponseDelay(cfg['delay-ms']);
  },
});
