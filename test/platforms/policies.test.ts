import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_RENEWAL, TokenEngine } from '../../src/core/token-engine.js';
import type { Token } from '../../src/core/token.js';
import { DEFAULT_ROTATION, INSIGHTS_HUB_AGENT } from '../../src/platforms/insights-hub-agent/declaration.js';
import { AgentLifecycle } from '../../src/platforms/insights-hub-agent/lifecycle.js';
import type { AgentState } from '../../src/platforms/insights-hub-agent/state.js';
import { PLATFORM_DECLARATIONS, RATE_LIMIT_HEADERS, SECRET_HEADERS } from '../../src/platforms/index.js';

/** The platform declarations and the policies in them, as values. */
describe('platform declarations', () => {
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as {
    'node-red': { nodes: Record<string, string> };
  };

  it('each declares a distinct id, config type and property, and its config type is a node of the package', () => {
    for (const key of ['id', 'configType', 'property'] as const) {
      const values = PLATFORM_DECLARATIONS.map((p) => p[key]);
      assert.equal(new Set(values).size, values.length, `${key} used twice`);
    }
    for (const p of PLATFORM_DECLARATIONS) assert.ok(pkg['node-red'].nodes[p.configType], p.configType);
  });

  it("every header a platform sets or marks secret reaches the HTTP layer's credential stripping", () => {
    for (const p of PLATFORM_DECLARATIONS) {
      assert.ok(p.headers.length > 0, p.id);
      for (const name of p.secretHeaders) assert.ok(SECRET_HEADERS.includes(name), `${p.id}: ${name}`);
    }
    // The ones the core used to list by name, now data from the declarations.
    for (const name of ['authorization', 'cookie', 'x-space-auth-key', 'x-tenant-id', 'x-mbp-access-request']) assert.ok(SECRET_HEADERS.includes(name), name);
    assert.deepEqual(RATE_LIMIT_HEADERS, ['archivist-rate-limit-reset']);
  });

  it("renewal policies: today's numbers by default, for every platform", () => {
    assert.deepEqual({ ...DEFAULT_RENEWAL }, { marginMin: 0.15, marginSpread: 0.1, staleMargin: 0.05, staleMarginMaxMs: 30_000 });
    for (const p of PLATFORM_DECLARATIONS) assert.deepEqual(p.renewal, DEFAULT_RENEWAL, p.id);
  });

  it('the engine applies the policy a credential was registered with', async () => {
    let now = 1_000_000;
    const engine = new TokenEngine({ now: () => now, random: () => 0 });
    const token = (): Promise<Token> => Promise.resolve({ type: 'bearer', value: `t${now}`, obtainedAt: now, expiresAt: now + 100_000, headers: {} });
    const byDefault = engine.credential('default', 'fp');
    const early = engine.credential('early', 'fp', { marginMin: 0.5, marginSpread: 0, staleMargin: 0.01, staleMarginMaxMs: 1_000 });
    await byDefault.get(token);
    await early.get(token);
    assert.equal(byDefault.state.renewAt! - now, 85_000);
    assert.equal(early.state.renewAt! - now, 50_000);
    // The stale point follows the policy too: at 99.5 s the default entry (stale from 95 s) needs a new token, the other does not.
    now += 99_500;
    assert.equal(byDefault.peek(), undefined);
    assert.equal(early.peek(), undefined, '1 % of 100 s is 1 s: stale from 99 s');
    now -= 1_000;
    assert.notEqual(early.peek(), undefined);
  });

  it('agent rotation: the declared policy, its point drawn once per agent', () => {
    assert.deepEqual(INSIGHTS_HUB_AGENT.rotation, DEFAULT_ROTATION);
    assert.deepEqual({ ...DEFAULT_ROTATION }, { marginMin: 0.25, marginSpread: 0.1 });
    const received = Date.parse('2026-01-01T00:00:00Z');
    const lifetimeS = 1000;
    const state = {
      registrations: [{ registrationAccessToken: 'rat', clientSecretExpiresAt: received / 1000 + lifetimeS, receivedAt: new Date(received).toISOString() }],
    } as unknown as AgentState;
    let now = 0;
    // A random source that changes on every call: the agent must still keep one rotation point.
    let draws = 0;
    const random = () => [0, 0.999, 0.5][draws++ % 3]!;
    const agent = new AgentLifecycle({
      store: {} as never,
      mutex: {} as never,
      boarding: { baseUrl: 'http://127.0.0.1:9', iat: 'iat-for-the-test', clientId: 'agent-1' } as never,
      profile: 'SHARED_SECRET',
      now: () => now,
      random,
      rotation: DEFAULT_ROTATION,
    });
    // Drawn once (random() = 0): rotation at 25 % of the lifetime left, i.e. from 750 s on.
    const due = (atS: number) => {
      now = received + atS * 1000;
      return agent.rotationDue(state);
    };
    for (let i = 0; i < 5; i++) {
      assert.equal(due(749), false);
      assert.equal(due(750), true);
    }
    assert.equal(draws, 1, 'one draw, at construction');
  });
});
