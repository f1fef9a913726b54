#!/usr/bin/env node
// Builds a cairn plugin written in JavaScript into a WebAssembly component:
//
//   cairn-js-build PLUGIN_DIR [-o OUT.wasm] [--world validator|fault-injector]
//                  [--contract 0.1.0|0.2.0] [--entry app.js] [--no-cache]
//
// (the package's bin; in a cairn checkout also `node plugin-sdk/js/build.mjs`).
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
// Errors: the bundle gets a line table (from esbuild's source map) so that
// an uncaught error names the plugin's own file and line (`app.js line 12`).
//
// Reproducible output: componentize-js snapshots the engine's memory after
// running the bundle (wizer), and that snapshot holds state seeded from the
// build machine's entropy and clocks, and the path of componentize-js's own
// temporary directory, none of which a caller can fix. So two from-scratch
// builds of the same source differ. The build is therefore input-addressed:
// the component is kept in a cache under the digest of everything that goes
// into it (the bundle, the WIT, the world and contract, the toolchain's
// versions), and a build with the same inputs gives back the same bytes
// without running componentize-js again. The cache is $CAIRN_BUILD_CACHE,
// else $XDG_CACHE_HOME/cairn/components (~/.cache/cairn/components); it keeps
// the most recently used entries (see CACHE_KEEP). `--no-cache` builds
// from scratch (and refreshes the entry).
//
// Needs the package's dependencies: `npm install` in the plugin's project
// (which installs this SDK), or once in plugin-sdk/js for a checkout.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  copyFile,
  mkdtemp,
  readFile,
  readdir,
  rename,
  rm,
  mkdir,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
// The WIT of every contract: inside the package (`npm pack` copies it in),
// else the checkout's wit/ two levels up.
const WIT_ROOT = existsSync(join(SDK_DIR, 'wit'))
  ? join(SDK_DIR, 'wit')
  : resolve(SDK_DIR, '..', '..', 'wit');
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
    fail(
      `${name} is not installed; run \`npm install\` in the plugin's project ` +
        `(or, for a cairn checkout, \`npm install --prefix ${SDK_DIR}\`)`,
    );
  }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    output: { type: 'string', short: 'o' },
    world: { type: 'string' },
    contract: { type: 'string' },
    entry: { type: 'string', default: 'app.js' },
    'no-cache': { type: 'boolean', default: false },
  },
});
if (positionals.length !== 1) {
  fail(
    'usage: build.mjs PLUGIN_DIR [-o OUT.wasm] [--world validator|fault-injector] ' +
      '[--contract 0.1.0|0.2.0] [--entry app.js] [--no-cache]',
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

/** What the build does beyond its inputs; bump it when the recipe changes. */
const RECIPE = 'cairn-js-build/2 disable=http,fetch-event line-table';
/** How many components the cache keeps (most recently used first). */
const CACHE_KEEP = 24;

/** Decodes one base64 VLQ field list of a source map segment. */
function decodeSegment(segment) {
  const CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const values = [];
  let value = 0;
  let shift = 0;
  for (const char of segment) {
    const digit = CHARS.indexOf(char);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

/**
 * The bundle's line table: for each bundle line, the source positions on it
 * as [0-based column, file index, 1-based line] wherever the source line
 * changes, file names relative to the plugin's folder (the SDK's as
 * `cairn-plugin-sdk/...`), and whether each file is the plugin's own (not
 * the SDK's, not a dependency's).
 */
function lineTable(map, bundleDir) {
  const files = [];
  const own = [];
  for (const source of map.sources) {
    const path = resolve(bundleDir, source);
    const inSdk = relative(SDK_DIR, path);
    if (!inSdk.startsWith('..') && !inSdk.split(sep).includes('tests')) {
      files.push(`cairn-plugin-sdk/${inSdk}`);
      own.push(false);
    } else {
      const file = relative(pluginDir, path);
      files.push(file);
      own.push(!file.startsWith('..') && !file.split(sep).includes('node_modules'));
    }
  }
  const lines = [];
  let source = 0;
  let line = 0;
  for (const generated of map.mappings.split(';')) {
    const positions = [];
    let column = 0;
    for (const segment of generated.split(',')) {
      if (segment === '') {
        continue;
      }
      const fields = decodeSegment(segment);
      column += fields[0];
      if (fields.length >= 4) {
        source += fields[1];
        line += fields[2];
        const last = positions.at(-1);
        if (last === undefined || last[1] !== source || last[2] !== line + 1) {
          positions.push([column, source, line + 1]);
        }
      }
    }
    lines.push(positions);
  }
  return { files: files.map((file) => file.split(sep).join('/')), own, lines };
}

/** Names and contents of every file under `dir`, sorted, into `hash`. */
async function hashTree(hash, dir) {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const entry of entries) {
    const path = join(dir, entry.name);
    hash.update(`${entry.name}\0`);
    if (entry.isDirectory()) {
      await hashTree(hash, path);
    } else {
      hash.update(await readFile(path));
    }
    hash.update('\0');
  }
}

/**
 * The installed version of package `name`, found as Node resolves this
 * module's imports: in the node_modules of SDK_DIR or of any folder above it
 * (a checkout's plugin-sdk/js, or the project that installed this SDK).
 */
async function installedVersion(name) {
  for (let dir = SDK_DIR; ; dir = dirname(dir)) {
    const manifest = join(dir, 'node_modules', ...name.split('/'), 'package.json');
    if (existsSync(manifest)) {
      return JSON.parse(await readFile(manifest, 'utf8')).version;
    }
    if (dirname(dir) === dir) {
      fail(`cannot find ${name}'s package.json above ${SDK_DIR}`);
    }
  }
}

async function cacheKey(bundleText) {
  const componentizeJs = await installedVersion('@bytecodealliance/componentize-js');
  const hash = createHash('sha256');
  hash.update(
    `${RECIPE}\0${world}\0${contract}\0componentize-js ${componentizeJs}\0esbuild ${esbuild.version}\0`,
  );
  await hashTree(hash, witDir);
  hash.update(bundleText);
  return hash.digest('hex');
}

function cacheDir() {
  if (process.env.CAIRN_BUILD_CACHE) {
    return resolve(process.env.CAIRN_BUILD_CACHE);
  }
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'cairn', 'components');
}

/** Keeps the CACHE_KEEP most recently used components. */
async function pruneCache(dir) {
  const entries = [];
  for (const name of await readdir(dir)) {
    if (name.endsWith('.wasm')) {
      const { mtimeMs } = await stat(join(dir, name)).catch(() => ({ mtimeMs: 0 }));
      entries.push({ name, mtimeMs });
    }
  }
  entries.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { name } of entries.slice(CACHE_KEEP)) {
    await rm(join(dir, name), { force: true });
  }
}

const staging = await mkdtemp(join(tmpdir(), 'cairn-js-build-'));
let failure;
try {
  const bundle = join(staging, 'plugin.js');
  failure = await bundleWith(esbuild, {
    entryPoints: [entry],
    absWorkingDir: pluginDir,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    outfile: bundle,
    sourcemap: 'external',
    sourcesContent: false,
    alias: { 'cairn-plugin-sdk': SDK_DIR },
    external: ['cairn:*', 'wasi:*'],
    plugins: [contractPlugin],
    logLevel: 'warning',
  });
  if (failure !== undefined) {
    throw failure;
  }
  // The line table goes last, on one line: the bundle's own lines keep
  // their numbers.
  const map = JSON.parse(await readFile(`${bundle}.map`, 'utf8'));
  const code = (await readFile(bundle, 'utf8')).replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n');
  const bundleText =
    `${code}globalThis.__cairnLines = ${JSON.stringify(lineTable(map, staging))};\n`;
  await writeFile(bundle, bundleText);
  await rm(`${bundle}.map`);

  const cache = cacheDir();
  const cached = join(cache, `${await cacheKey(bundleText)}.wasm`);
  let hit = false;
  if (!values['no-cache']) {
    hit = await stat(cached).then((s) => s.isFile(), () => false);
  }
  if (!hit) {
    const { component } = await componentize({
      sourcePath: bundle,
      witPath: witDir,
      worldName: world,
      // cairn provides no HTTP; stdio, random and clocks stay (console.log
      // is captured, and the engine needs random and the monotonic clock).
      disableFeatures: ['http', 'fetch-event'],
    });
    await mkdir(cache, { recursive: true });
    const partial = `${cached}.${process.pid}.partial`;
    await writeFile(partial, component);
    await rename(partial, cached);
  } else {
    const now = new Date();
    await utimes(cached, now, now).catch(() => {});
  }
  await mkdir(dirname(output), { recursive: true });
  await copyFile(cached, output);
  await pruneCache(cache).catch(() => {});
  console.log(
    `built ${output} (${world}, cairn:plugin@${contract}${hit ? ', unchanged: from the build cache' : ''})`,
  );
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
