// {{name}}: a cairn fault injector written in JavaScript.
//
// Build:  ./build.sh            (writes target/{{crate}}.wasm)

import { Refusal, pluginInfo } from 'cairn-plugin-sdk/common';
import { delay, exportFaultInjector, none } from 'cairn-plugin-sdk/fault-injector';

export const faultInjection = exportFaultInjector({
  info: () => pluginInfo('{{name}}', '0.1.0', 'Delays every Nth request (config: every, delay_ms)'),

  decide(request, config) {
    let cfg;
    try {
      cfg = { every: 10, delay_ms: 200, ...JSON.parse(config) };
    } catch {
      throw new Refusal('invalid config: expected {"every": N, "delay_ms": MS}');
    }
    if (!Number.isInteger(cfg.every) || cfg.every < 1) {
      throw new Refusal('invalid config: every must be a positive integer');
    }
    // `sequence` is a u64, so it arrives as a BigInt.
    const every = BigInt(cfg.every);
    return request.sequence % every === every - 1n ? delay(cfg.delay_ms) : none();
  },
});
