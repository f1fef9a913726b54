#!/usr/bin/env node
// Builds a cairn plugin written in JavaScript into a WebAssembly component:
//
//   node plugin-sdk/js/build.mjs PLUGIN_DIR [-o OUT.wasm]
//                                [--world validator|fault-injector]
//                                [--contract 0.1.0|0.2.0] [--entry app.js]
//
// The entry module (app.js by default) and whatever it imports are bundled
// with esbuild (`cairn-plugin-sdk/...` resolves to this SDK; `cairn:` and
// `wasi:` imports stay for the component), then componentize-js turns the
// bundle into a component. The world is read from the entry module
// (`exportFaultInjector` means `fault-injector`) unless --world is given.
//
// The contract version defaults to the newest that defines the world:
// validators are built against cairn:plugin@0.1.0 (wit/v0.1; 0.2.0 has no
// validator world), fault injectors against cairn:plugin@0.2.0 (wit/v0.2).
// `--contract 0.1.0` builds a fault injector written for 0.1.0 (`none()`,
// `delay()`, `errorResponse()`, ...) unchanged: `cairn-plugin-sdk/fault-injector`
// then resolves to the SDK's frozen 0.1.0 module (v0_1/fault-injector.js).
// An unversioned `cairn:plugin/<interface>` import (the SDK's logging) gets
// the version built against.
//
// Needs `npm install` in plugin-sdk/js once.

import { mkdtemp, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const WIT_ROOT = resolve(SDK_DIR, '..', '..', 'wit');
const WORLDS = ['validator', 'fault-injector'];
// Contract version -> its WIT folder and the worlds it defines, oldest first.
const CONTRACTS = {
  '0.1.0': { wit: 'v0.1', worlds: ['validator', 'fault-injector'] },
  '0.2.0': { wit: 'v0.2', worlds: ['fault-injector'] },
};
// The SDK's frozen modules of older contracts, by the import they replace.
const FROZEN = {
  '0.1.0': { 'cairn-plugin-sdk/fault-injector': join(SDK_DIR, 'v0_1', 'fault-injector.js') },
};

/** The newest contract version that defines `world`. */
function latestContract(world) {
  return Object.keys(CONTRACTS)
    .filter((version) => CONTRACTS[version].worlds.includes(world))
    .at(-1);
}

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
    contract: { type: 'string' },
    entry: { type: 'string', default: 'app.js' },
  },
});
if (positionals.length !== 1) {
  fail(
    'usage: build.mjs PLUGIN_DIR [-o OUT.wasm] [--world validator|fault-injector] ' +
      '[--contract 0.1.0|0.2.0] [--entry app.js]',
  );
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
const contract = values.contract ?? latestContract(world);
if (!(contract in CONTRACTS)) {
  fail(`unknown contract ${contract}; expected one of ${Object.keys(CONTRACTS).join(', ')}`);
}
if (!CONTRACTS[contract].worlds.includes(world)) {
  fail(
    `contract ${contract} has no ${world} world; a ${world} is built against ` +
      `${latestContract(world)} (drop --contract, or pass --contract ${latestContract(world)})`,
  );
}
const witDir = join(WIT_ROOT, CONTRACTS[contract].wit);

/** esbuild plugin: versions the SDK's `cairn:plugin/...` imports and swaps in frozen modules. */
const contractPlugin = {
  name: 'cairn-contract',
  setup(build) {
    build.onResolve({ filter: /^cairn:plugin\/[a-z-]+$/ }, (args) => ({
      path: `${args.path}@${contract}`,
      external: true,
    }));
    for (const [specifier, path] of Object.entries(FROZEN[contract] ?? {})) {
      const exact = new RegExp(`^${specifier.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`);
      build.onResolve({ filter: exact }, () => ({ path }));
    }
  },
};
/**
 * Bundles with esbuild. On failure (esbuild has printed its errors) returns
 * the message to end with, hinting at `--contract 0.1.0` when a 0.1.0 fault
 * injector was built against 0.2.0; `undefined` on success.
 */
async function bundleWith(esbuild, options) {
  try {
    await esbuild.build(options);
    return undefined;
  } catch (err) {
    const oldNames =
      /No matching export in "[^"]*fault-injector\.js" for import "(none|delay|errorResponse|throttle|hang|reset|header)"/;
    const hint =
      world === 'fault-injector' && contract !== '0.1.0' && oldNames.test(String(err?.message))
        ? '\nhint: the plugin uses the fault builders of contract 0.1.0; if it is a 0.1.0 ' +
          'fault injector, build it with --contract 0.1.0'
        : '';
    return `bundling ${entry} failed (see above)${hint}`;
  }
}

const output = resolve(
  values.output ?? join(pluginDir, 'target', `${basename(pluginDir).replaceAll('-', '_')}.wasm`),
);

const esbuild = await load('esbuild');
const { componentize } = await load('@bytecodealliance/componentize-js');

const staging = await mkdtemp(join(tmpdir(), 'cairn-js-build-'));
let failure;
try {
  const bundle = join(staging, 'plugin.js');
  failure = await bundleWith(esbuild, {
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    outfile: bundle,
    alias: { 'cairn-plugin-sdk': SDK_DIR },
    external: ['cairn:*', 'wasi:*'],
    plugins: [contractPlugin],
    logLevel: 'warning',
  });
  if (failure !== undefined) {
    throw failure;
  }
  const { component } = await componentize({
    sourcePath: bundle,
    witPath: witDir,
    worldName: world,
    // cairn provides no HTTP; stdio, random and clocks stay (console.log
    // is captured, and the engine needs random and the monotonic clock).
    disableFeatures: ['http', 'fetch-event'],
  });
  await mkdir(dirname(output), { recursive: true });
  await writeFile(output, component);
  console.log(`built ${output} (${world}, cairn:plugin@${contract})`);
} catch (err) {
  if (err !== failure) {
    throw err;
  }
} finally {
  await rm(staging, { recursive: true, force: true });
}
if (failure !== undefined) {
  fail(failure);
}
