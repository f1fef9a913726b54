// Unit tests of the JavaScript SDK's fault-injector side (contract 0.2.0),
// run with plain Node: `node --test plugin-sdk/js/tests/` (tests/suite/
// languages.rs runs them). The SDK is bundled with esbuild, as a build does,
// with the `cairn:plugin/logging` import stubbed; the draws are checked
// against the same numbers as the Rust SDK's tests, so the SDKs agree.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import * as esbuild from 'esbuild';

const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const U64_MAX = 2n ** 64n - 1n;

let sdk;
let staging;

before(async () => {
  staging = await mkdtemp(join(tmpdir(), 'cairn-js-sdk-test-'));
  const outfile = join(staging, 'fault-injector.mjs');
  await esbuild.build({
    entryPoints: [join(SDK_DIR, 'fault-injector.js')],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    outfile,
    logLevel: 'warning',
    plugins: [
      {
        name: 'stub-cairn',
        setup(build) {
          build.onResolve({ filter: /^cairn:/ }, (args) => ({ path: args.path, namespace: 'stub' }));
          build.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
            contents: 'export const log = () => {};',
          }));
        },
      },
    ],
  });
  sdk = await import(pathToFileURL(outfile).href);
});

after(async () => {
  await rm(staging, { recursive: true, force: true });
});

describe('Request', () => {
  test('header matches names case-insensitively and returns the first value', () => {
    const request = new sdk.Request({ headers: [['x-tenant', 'acme'], ['x-tenant', 'second']] });
    assert.equal(request.header('X-Tenant'), 'acme');
    assert.equal(request.header('x-other'), undefined);
  });

  test('chance is true exactly below the percent of the random range', () => {
    for (const [percent, threshold] of [
      [5, 922337203685477632n],
      [50, 2n ** 63n],
      [33.3, 6142765776545280000n],
    ]) {
      assert.equal(new sdk.Request({ random: threshold - 1n }).chance(percent), true, `${percent}`);
      assert.equal(new sdk.Request({ random: threshold }).chance(percent), false, `${percent}`);
    }
    assert.equal(new sdk.Request({ random: U64_MAX }).chance(99.999), false);
  });

  test('chance of zero or NaN is never and of a hundred is always', () => {
    for (const random of [0n, 1n, 2n ** 63n, U64_MAX]) {
      for (const never of [0, -3, NaN]) {
        assert.equal(new sdk.Request({ random }).chance(never), false, `${random} ${never}`);
      }
      for (const always of [100, 250]) {
        assert.equal(new sdk.Request({ random }).chance(always), true, `${random} ${always}`);
      }
    }
  });

  test('randomBelow takes the high bits of random times n, as a number or a BigInt', () => {
    const cases = [
      [0n, 10n, 0n],
      [U64_MAX, 10n, 9n],
      [2n ** 63n, 10n, 5n],
      [U64_MAX, U64_MAX, U64_MAX - 1n],
      [U64_MAX, 1n, 0n],
      [0x9e3779b97f4a7c15n, 1000n, 618n],
      [0x9e3779b97f4a7c15n, 7n, 4n],
    ];
    for (const [random, n, drawn] of cases) {
      assert.equal(new sdk.Request({ random }).randomBelow(n), drawn, `${random} ${n}`);
    }
    assert.equal(new sdk.Request({ random: U64_MAX }).randomBelow(10), 9);
    assert.equal(new sdk.Request({ random: U64_MAX }).randomBelow(0), 0);
    assert.throws(() => new sdk.Request().randomBelow(-1), RangeError);
  });
});

describe('Decision', () => {
  test('pass forwards without delays or body faults', () => {
    const pass = sdk.Decision.pass();
    assert.equal(pass.delayRequestMs, 0);
    assert.equal(pass.delayResponseMs, 0);
    assert.deepEqual(pass.action, { tag: 'forward' });
    assert.deepEqual(pass.body, {});
  });

  test('abort builders fill the response in order without changing the original', () => {
    const base = sdk.Decision.abort(503);
    const decision = base
      .withHeader('retry-after', '2')
      .withHeader('x-by', 'cairn')
      .withBody('try later')
      .withRequestDelay(10)
      .withResponseDelay(20);
    assert.equal(decision.delayRequestMs, 10);
    assert.equal(decision.delayResponseMs, 20);
    assert.equal(decision.action.tag, 'abort');
    assert.equal(decision.action.val.status, 503);
    assert.deepEqual(decision.action.val.headers, [['retry-after', '2'], ['x-by', 'cairn']]);
    assert.deepEqual(decision.action.val.body, new TextEncoder().encode('try later'));
    assert.deepEqual(base.action.val.headers, []);
    assert.equal(base.action.val.body, undefined);
  });

  test('headers and body are ignored for actions other than abort', () => {
    for (const decision of [sdk.Decision.pass(), sdk.Decision.reset(), sdk.Decision.hang(100)]) {
      assert.equal(decision.withHeader('retry-after', '1').withBody('x'), decision);
    }
  });

  test('body faults combine, truncation as a BigInt', () => {
    const decision = sdk.Decision.pass().throttle(1024).truncateAfter(10000).corrupt(3);
    assert.deepEqual(decision.body, {
      throttleBytesPerSecond: 1024,
      truncateAfterBytes: 10000n,
      corruptBytes: 3,
    });
    assert.deepEqual(sdk.Decision.hang(250).action, { tag: 'hang', val: 250 });
  });
});

describe('exportFaultInjector', () => {
  const witRequest = (fields) => ({
    method: 'GET',
    scheme: 'http',
    authority: 'a',
    path: '/',
    query: undefined,
    headers: [],
    bodySize: undefined,
    attempt: 1,
    sequence: 0n,
    elapsedMs: 0n,
    activeFaults: 0,
    random: 0n,
    ...fields,
  });

  test('converts the request in and the decision out, in the shape componentize-js lowers', () => {
    const seen = [];
    const exported = sdk.exportFaultInjector({
      info: () => sdk.pluginInfo('p', '0.1.0', 'd'),
      decide(request, config) {
        seen.push([request.header('K'), request.random, config]);
        return sdk.Decision.abort(599).withHeader('a', 'b').withBody('x').truncateAfter(5);
      },
    });
    const wit = exported.decide(witRequest({ headers: [['k', 'v']], random: 7n }), '{}');
    assert.deepEqual(seen, [['v', 7n, '{}']]);
    assert.deepEqual(wit, {
      delayRequestMs: 0,
      delayResponseMs: 0,
      action: { tag: 'abort', val: { status: 599, headers: [['a', 'b']], body: new Uint8Array([120]) } },
      body: { throttleBytesPerSecond: undefined, truncateAfterBytes: 5n, corruptBytes: undefined },
    });
    assert.equal(exported.info().name, 'p');
  });

  test('a refusal propagates with its payload; a wrong answer or an uncaught error is a readable error result', () => {
    const refusing = sdk.exportFaultInjector({
      info: () => sdk.pluginInfo('p', '0.1.0', 'd'),
      decide() {
        throw new sdk.Refusal('invalid config: nope');
      },
    });
    assert.throws(() => refusing.decide(witRequest({}), '{}'), { payload: 'invalid config: nope' });
    const wrong = sdk.exportFaultInjector({
      info: () => sdk.pluginInfo('p', '0.1.0', 'd'),
      decide: () => undefined,
    });
    assert.throws(() => wrong.decide(witRequest({}), '{}'), {
      payload: /^TypeError: decide returned undefined, not a Decision \(at .* line \d+, in toWit\)$/,
    });
    const throwing = sdk.exportFaultInjector({
      info: () => sdk.pluginInfo('p', '0.1.0', 'd'),
      decide: (request, config) => JSON.parse(config).steps.length,
    });
    assert.throws(() => throwing.decide(witRequest({}), '{}'), {
      payload: /^TypeError: .*\(at .* line \d+, in (Object\.)?decide\)$/,
    });
  });
});
