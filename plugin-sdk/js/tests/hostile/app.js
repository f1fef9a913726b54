// A hostile validator written in JavaScript, for cairn's test suite
// (tests/suite/languages.rs): the config's `mode` picks the misbehaviour.

import { pluginInfo } from 'cairn-plugin-sdk/common';
import { exportValidator, verdict } from 'cairn-plugin-sdk/validator';

export const validation = exportValidator({
  info: () => pluginInfo('hostile-js', '0.1.0', 'Misbehaves on purpose'),
  validate(change, at, config) {
    const mode = JSON.parse(config).mode ?? 'behave';
    if (mode === 'loop') {
      for (;;) {}
    }
    if (mode === 'sleep') {
      // Blocks in a WASI poll: the engine's event loop waits for the timer.
      return new Promise((resolve) => {
        setTimeout(() => resolve(verdict([], 'woke up')), 10_000);
      });
    }
    if (mode === 'nap') {
      return new Promise((resolve) => {
        setTimeout(() => resolve(verdict([], 'woke up')), 100);
      });
    }
    if (mode === 'raise') {
      // An uncaught TypeError: the SDK makes it the plugin's error result.
      return verdict([], `${JSON.parse(config).steps.length} step(s)`);
    }
    if (mode === 'alloc') {
      const hoard = [];
      for (;;) {
        hoard.push(new Uint8Array(1 << 20).fill(1));
      }
    }
    return verdict([], `behaved with ${change.documents().length} document(s)`);
  },
});
