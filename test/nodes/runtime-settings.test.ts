import assert from 'node:assert/strict';
import type { NodeAPI } from '../../src/nodes/node-red.js';
import { runtimeOf } from '../../src/nodes/runtime.js';

/** settings.js values of the HTTP layer: a wrong one is the default, and the log says so once. */
describe('connection settings from settings.js', () => {
  function runtime(iiotAuth: Record<string, unknown>) {
    const warnings: string[] = [];
    const RED = {
      settings: { iiotAuth },
      log: { info() {}, warn: (m: string) => warnings.push(m), error() {} },
      nodes: { getNode: () => null },
    } as unknown as NodeAPI;
    return { RED, warnings };
  }

  it('valid values pass without a word', async () => {
    const { RED, warnings } = runtime({ tokenRequestsPerHost: 4, connectionsPerOrigin: 16, connectionIdleMs: 5000 });
    const client = runtimeOf(RED).httpClient(RED, { id: 'c1', type: 't' } as never);
    await client.close();
    assert.deepEqual(warnings, []);
  });

  it('a value that is not a positive whole number is warned about once, naming the setting, and the default is used', async () => {
    const { RED, warnings } = runtime({ tokenRequestsPerHost: 0, connectionsPerOrigin: '64', connectionIdleMs: 1.5 });
    const clients = [runtimeOf(RED).httpClient(RED, { id: 'c2', type: 't' } as never), runtimeOf(RED).httpClient(RED, { id: 'c3', type: 't' } as never)];
    await Promise.all(clients.map((c) => c.close()));
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.match(warnings.join('\n'), /iiotAuth\.tokenRequestsPerHost=0 is not a positive whole number; the default is used/);
    assert.match(warnings.join('\n'), /iiotAuth\.connectionsPerOrigin="64"/);
    assert.match(warnings.join('\n'), /iiotAuth\.connectionIdleMs=1\.5/);
  });
});

/** The package's state (token engine, limiter) per Node-RED runtime, not per process. */
describe('the package runtime', () => {
  // Node-RED gives each node module its own RED object and its own copy of the settings, but one admin app per runtime.
  const red = (httpAdmin: object, iiotAuth: Record<string, unknown> = {}) =>
    ({ httpAdmin, settings: { iiotAuth }, log: { info() {}, warn() {}, error() {} }, nodes: { getNode: () => null } }) as unknown as NodeAPI;

  it('every module of one runtime shares one engine; another runtime has its own, with its own settings', async () => {
    const admin = {};
    const first = runtimeOf(red(admin, { backoffInitialMs: 10 }));
    assert.equal(runtimeOf(red(admin, { backoffInitialMs: 10 })), first, 'another module of the same runtime');
    assert.equal(runtimeOf(red(admin)).engine, first.engine);
    const other = runtimeOf(red({}, { backoffInitialMs: 20 }));
    assert.notEqual(other.engine, first.engine);
    assert.equal(other.settings.backoffInitialMs, 20);
    // A token cached in one runtime is not seen by the other.
    const token = { type: 'bearer' as const, value: 'v', obtainedAt: Date.now(), expiresAt: Date.now() + 60_000, headers: {} };
    await first.engine.credential('c', 'fp').get(async () => token);
    assert.equal(first.engine.credential('c', 'fp').peek()?.value, 'v');
    assert.equal(other.engine.credential('c', 'fp').peek(), undefined);
  });
});
