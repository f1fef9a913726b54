#!/usr/bin/env node
// Builds a cairn plugin written in JavaScript into a WebAssembly component:
//
//   node plugin-sdk/js/build.mjs PLUGIN_DIR [-o OUT.wasm]
//                                [--world validator|fault-injector] [--entry app.js]
//
// The entry module (app.js by default) and whatever it imports are bundled
// with esbuild (`cairn-plugin-sdk/...` resolves to this SDK; `cairn:` and
// `wasi:` imports stay for the component), then componentize-js turns the
// bundle into a component. The world is read from the entry module
// (`exportFaultInjector` means `fault-injector`) unless --world is given.
// Needs `npm install` in plugin-sdk/js once.

import { mkdtemp, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const WIT_DIR = resolve(SDK_DIR, '..', '..', 'wit', 'v0.1');
const WORLDS = ['validator', 'fault-injector'];

function fail(message) {
  console.error(`cairn-js-build: ${message}`);
  process.exit(1);
}

async function load(name) {
  try {
    return await import(name);
  } catch {
    fail(`${name} is not installed; run:\n    npm install --prefix ${SDK_DIR}`);
  }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    output: { type: 'string', short: 'o' },
    world: { type: 'string' },
    entry: { type: 'string', default: 'app.js' },
  },
});
if (positionals.length !== 1) {
  fail('usage: build.mjs PLUGIN_DIR [-o OUT.wasm] [--world validator|fault-injector] [--entry app.js]');
}
const pluginDir = resolve(positionals[0]);
const entry = join(pluginDir, values.entry);
let source;
try {
  source = await readFile(entry, 'utf8');
} catch {
  fail(`${entry} does not exist`);
}
const world = values.world ?? (source.includes('exportFaultInjector') ? 'fault-injector' : 'validator');
if (!WORLDS.includes(world)) {
  fail(`unknown world ${world}; expected one of ${WORLDS.join(', ')}`);
}
const output = resolve(
  values.output ?? join(pluginDir, 'target', `${basename(pluginDir).replaceAll('-', '_')}.wasm`),
);

const esbuild = await load('esbuild');
const { componentize } = await load('@bytecodealliance/componentize-js');

const staging = await mkdtemp(join(tmpdir(), 'cairn-js-build-'));
try {
  const bundle = join(staging, 'plugin.js');
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    outfile: bundle,
    alias: { 'cairn-plugin-sdk': SDK_DIR },
    external: ['cairn:*', 'wasi:*'],
    logLevel: 'warning',
  });
  const { component } = await componentize({
    sourcePath: bundle,
    witPath: WIT_DIR,
    worldName: world,
    // cairn provides no HTTP; stdio, random and clocks stay (console.log
    // is captured, and the engine needs random and the monotonic clock).
    disableFeatures: ['http', 'fetch-event'],
  });
  await mkdir(dirname(output), { recursive: true });
  await writeFile(output, component);
  console.log(`built ${output} (${world})`);
} finally {
  await rm(staging, { recursive: true, force: true });
}
