// {{name}}: a cairn validator written in JavaScript.
//
// Build:  ./build.sh            (writes target/{{crate}}.wasm)
// Run:    cairn validate target/{{crate}}.wasm --change samples/clean/change

import { Refusal, log, pluginInfo } from 'cairn-plugin-sdk/common';
import { error, exportValidator, verdict } from 'cairn-plugin-sdk/validator';

export const validation = exportValidator({
  info: () => pluginInfo('{{name}}', '0.1.0', 'Fails when an added or modified document is empty'),

  validate(change, at, config) {
    if (!['', '{}'].includes(config.trim())) {
      throw new Refusal('this plugin takes no config');
    }
    log.info(`checking ${at.changeId} at ${at.name}`);
    const findings = change
      .documents()
      .filter((doc) => doc.status === 'added' || doc.status === 'modified')
      .filter((doc) => change.after(doc.path)?.length === 0)
      .map((doc) =>
        error('{{name}}/empty-document', `${doc.path} is empty`, {
          document: doc.path,
          hint: 'delete the document instead of emptying it',
        }),
      );
    return verdict(findings, `${findings.length} empty document(s)`);
  },
});
