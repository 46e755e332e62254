import assert from 'node:assert/strict';
import { ErrorCode, IiotAuthError } from '../../src/core/errors.js';
import type { Token } from '../../src/core/token.js';
import { TokenEngine, type Credential } from '../../src/core/token-engine.js';
import { DAY_MS, expiryWarnings, type HealthEvent, nextWarningCheck } from '../../src/health/events.js';
import { escapeLabelValue, metricsText } from '../../src/health/metrics.js';
import { deriveState, type HealthEntry, type HealthInputs, zeroCounts } from '../../src/health/model.js';
import { type AgentHealthSource, COUNTS_COALESCE_MS, HealthRegistry, LOCKED_OUT_CODES, type Timers } from '../../src/health/registry.js';
import type { AgentEvent, AgentSummary } from '../../src/platforms/insights-hub-agent/lifecycle.js';
import { AgentErrorCode } from '../../src/platforms/insights-hub-agent/errors.js';

/**
 * The health model with a fake clock and fake timers: every state and every
 * transition between the settled states, the events they make (one per
 * transition, none for repeats), the counters, the coalesced publishing,
 * the warning windows, and the metrics text. The engine is the real one,
 * fed by fetchers the test settles.
 */
const SECRET = 'the-client-secret-1234';
const HOUR = 60 * 60 * 1000;

class FakeTime implements Timers {
  time = Date.parse('2026-12-01T00:00:00Z');
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private next = 1;
  now = () => this.time;
  set(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.push({ at: this.time + ms, fn, id });
    return id;
  }
  clear(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  /** Moves the clock, running each timer that falls due on the way, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
    }
    this.time = end;
  }
  get pending(): number {
    return this.timers.length;
  }
}

/** A fetcher whose requests the test settles. */
function fetcher(time: FakeTime, lifetimeMs = HOUR) {
  const pending: Array<{ resolve: (t: Token) => void; reject: (e: Error) => void }> = [];
  let n = 0;
  return {
    fetch: () =>
      new Promise<Token>((resolve, reject) => {
        pending.push({ resolve, reject });
      }),
    async succeed() {
      n += 1;
      pending.shift()!.resolve({ type: 'bearer', value: `token-${n}`, obtainedAt: time.time, expiresAt: time.time + lifetimeMs, headers: {} });
      await flush();
    },
    async fail(code: string, message = `refused, secret ${SECRET} quoted by the server`) {
      pending.shift()!.reject(new IiotAuthError(code as ErrorCode, message));
      await flush();
    },
  };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

interface Setup {
  time: FakeTime;
  engine: TokenEngine;
  registry: HealthRegistry;
  credential: Credential;
  events: HealthEvent[];
  published: Array<HealthEntry | { id: string; removed: true }>;
  handle: { close(removed: boolean): void };
  entry(): HealthEntry;
}

function setup(options: { agent?: FakeAgent; configError?: IiotAuthError; id?: string } = {}): Setup {
  const time = new FakeTime();
  const registry = new HealthRegistry({ now: time.now, timers: time });
  const engine = new TokenEngine({ now: time.now, random: () => 0.5, observer: registry.engineObserver, backoffInitialMs: 1000, backoffMaxMs: 60_000 });
  const id = options.id ?? 'cfg1';
  const credential = engine.credential(id, 'fp');
  const events: HealthEvent[] = [];
  const published: Setup['published'] = [];
  registry.subscribe({ event: (e) => events.push(e) });
  registry.publishTo((p) => published.push(p));
  const handle = registry.register({
    id,
    type: options.agent ? 'iiot-insights-hub-agent' : 'iiot-oauth2',
    platform: options.agent ? 'insights-hub-agent' : 'oauth2',
    platformLabel: options.agent ? 'Insights Hub agent' : 'OAuth 2.0',
    name: 'line 7',
    configError: options.configError,
    credential: options.configError ? undefined : credential,
    redact: (text) => text.split(SECRET).join('***'),
    agent: options.agent,
  });
  return { time, engine, registry, credential, events, published, handle, entry: () => registry.entry(id)! };
}

class FakeAgent implements AgentHealthSource {
  listeners = new Set<(e: AgentEvent) => void>();
  state: AgentSummary = {
    clientId: 'agent-1',
    onboarded: true,
    profile: 'SHARED_SECRET',
    registrationsKept: 1,
    rotationPossible: true,
    store: { kind: 'file', where: '/data/agents' },
  };
  summary(): AgentSummary {
    return this.state;
  }
  observe(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  tell(event: AgentEvent): void {
    for (const l of this.listeners) l(event);
  }
}

const topics = (events: HealthEvent[]) => events.map((e) => `${e.previous ?? '-'}>${e.topic}`);

/** The settled transitions the tests below walk through, each counted once (the report quotes the number). */
const TRANSITIONS_TESTED = new Set<string>();
function walked(from: string, to: string): void {
  TRANSITIONS_TESTED.add(`${from}→${to}`);
}

describe('health model', () => {
  after(() => {
    // Printed for the report: how many distinct transitions these tests drive.
    console.log(`      (${TRANSITIONS_TESTED.size} distinct state transitions driven: ${[...TRANSITIONS_TESTED].join(', ')})`);
  });

  describe('deriveState: every state from the engine snapshot', () => {
    const base: HealthInputs = {
      id: 'x',
      type: 't',
      platform: 'p',
      platformLabel: 'P',
      name: '',
      counts: zeroCounts(),
      lockedOutCodes: LOCKED_OUT_CODES,
    };
    const now = Date.parse('2026-12-01T00:00:00Z');
    const cases: [string, Partial<HealthInputs>, string, RegExp][] = [
      ['no token yet', { credential: { state: 'empty', failures: 0 } }, 'ok', /no token yet/],
      [
        'a valid token',
        { credential: { state: 'valid', failures: 0, expiresAt: now + HOUR, renewAt: now + HOUR / 2 } },
        'ok',
        /token valid until 2026-12-01T01/,
      ],
      ['an expired token, nobody asked', { credential: { state: 'empty', failures: 0, expiresAt: now - 1 } }, 'ok', /expired/],
      ['first request in flight', { credential: { state: 'fetching', failures: 0 } }, 'renewing', /requesting a token/],
      ['renewal in flight', { credential: { state: 'renewing', failures: 0, expiresAt: now + HOUR } }, 'renewing', /still valid/],
      [
        'renewal failed, token valid',
        { credential: { state: 'valid', failures: 1, expiresAt: now + HOUR, retryAt: now + 1000, lastErrorCode: 'HTTP_TIMEOUT' } },
        'backing-off',
        /token renewal failing: HTTP_TIMEOUT \(retry at .*\); the token stays valid until/,
      ],
      [
        'failed, no token, back-off',
        { credential: { state: 'backoff', failures: 2, retryAt: now + 2000, lastErrorCode: 'API_ERROR' } },
        'failing',
        /token endpoint failing: API_ERROR \(retry at/,
      ],
      ['failed, back-off over', { credential: { state: 'empty', failures: 2, lastErrorCode: 'API_ERROR' } }, 'failing', /retried with the next message/],
      [
        'refused credentials',
        { credential: { state: 'backoff', failures: 1, lastErrorCode: 'AUTH_REJECTED' } },
        'locked-out',
        /refuses the credentials: AUTH_REJECTED/,
      ],
      ['an agent offboarded', { credential: { state: 'backoff', failures: 1, lastErrorCode: AgentErrorCode.OFFBOARDED } }, 'locked-out', /OFFBOARDED/],
      ['a secret expired', { credential: { state: 'backoff', failures: 1, lastErrorCode: AgentErrorCode.SECRET_EXPIRED } }, 'locked-out', /SECRET_EXPIRED/],
      ['an IAT used', { credential: { state: 'backoff', failures: 1, lastErrorCode: AgentErrorCode.IAT_USED } }, 'locked-out', /IAT_USED/],
      [
        'a config error',
        { configError: { code: 'CREDENTIALS_MISSING', message: 'enter the client secret' } },
        'not-configured',
        /not configured: CREDENTIALS_MISSING/,
      ],
    ];
    for (const [name, inputs, state, text] of cases) {
      it(`${name}: ${state}`, () => {
        const derived = deriveState({ ...base, ...inputs }, now);
        assert.equal(derived.state, state);
        assert.match(derived.stateText, text);
      });
    }
  });

  describe('transitions and their events, with the real engine', () => {
    it('first token: ok, renewing, ok: no event; counts the request; publishes each change of the view', async () => {
      const s = setup();
      const f = fetcher(s.time);
      assert.equal(s.entry().state, 'ok');
      const got = s.credential.get(f.fetch);
      assert.equal(s.entry().state, 'renewing');
      await f.succeed();
      await got;
      assert.equal(s.entry().state, 'ok');
      assert.deepEqual(topics(s.events), []);
      walked('(new)', 'ok');
      assert.equal(s.entry().counts.tokenRequests, 1);
      assert.equal(s.entry().counts.renewals, 0);
      assert.ok(s.entry().lastSuccessAt && s.entry().tokenExpiresAt && s.entry().renewAt);
      // registered, renewing, ok: three views, each published once.
      assert.deepEqual(
        s.published.map((p) => ('state' in p ? p.state : 'removed')),
        ['ok', 'renewing', 'ok'],
      );
    });

    it('ok → failing → (repeat) → ok: token/failing once, token/recovered once; failures counted; message redacted', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const first = s.credential.get(f.fetch).catch((e: unknown) => e);
      await f.fail('TOKEN_ENDPOINT_ERROR');
      await first;
      assert.equal(s.entry().state, 'failing');
      walked('ok', 'failing');
      assert.equal(s.entry().lastFailure?.code, 'TOKEN_ENDPOINT_ERROR');
      assert.ok(!JSON.stringify(s.entry()).includes(SECRET), 'the failure message is redacted');
      assert.match(s.entry().lastFailure!.message, /\*\*\*/);
      s.time.advance(5000); // the back-off is over
      const second = s.credential.get(f.fetch).catch((e: unknown) => e);
      await f.fail('TOKEN_ENDPOINT_ERROR');
      await second;
      walked('failing', 'failing');
      assert.equal(s.entry().counts.failures, 2);
      s.time.advance(10_000);
      const third = s.credential.get(f.fetch);
      await f.succeed();
      await third;
      walked('failing', 'ok');
      assert.deepEqual(topics(s.events), ['ok>token/failing', 'failing>token/recovered']);
      assert.equal(s.entry().counts.tokenRequests, 3);
      assert.equal(s.entry().lastFailure?.code, 'TOKEN_ENDPOINT_ERROR', 'the last failure stays on record');
    });

    it('ok → backing-off (a renewal fails, the token still works) → ok: token/backing-off, token/recovered; the renewal counted', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const got = s.credential.get(f.fetch);
      await f.succeed();
      await got;
      s.time.advance(0.8 * HOUR); // past the renewal point (15-25 % left), before the stale point
      await s.credential.get(f.fetch); // hands out the token, renews in the background
      assert.equal(s.entry().state, 'renewing');
      await f.fail('HTTP_TIMEOUT');
      assert.equal(s.entry().state, 'backing-off');
      walked('ok', 'backing-off');
      assert.ok(s.entry().retryAt);
      assert.equal(s.entry().counts.renewals, 1);
      s.time.advance(5000);
      await s.credential.get(f.fetch);
      await f.succeed();
      assert.equal(s.entry().state, 'ok');
      walked('backing-off', 'ok');
      assert.deepEqual(topics(s.events), ['ok>token/backing-off', 'backing-off>token/recovered']);
      assert.equal(s.entry().counts.renewals, 2);
    });

    it('backing-off → failing by time alone: the token runs out with no message (a timer derives the entry again)', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const got = s.credential.get(f.fetch);
      await f.succeed();
      await got;
      s.time.advance(0.8 * HOUR);
      await s.credential.get(f.fetch);
      await f.fail('HTTP_CONNECTION_REFUSED');
      assert.equal(s.entry().state, 'backing-off');
      s.time.advance(0.3 * HOUR); // the token expires; nobody sends a message
      walked('backing-off', 'failing');
      assert.deepEqual(topics(s.events), ['ok>token/backing-off', 'backing-off>token/failing']);
      assert.equal(s.published.filter((p) => 'state' in p).at(-1)?.state, 'failing', 'published without a message');
    });

    it('ok → locked-out → failing → locked-out → ok: each a topic (token/locked-out for a non-agent)', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const attempt = async (outcome: () => Promise<void>) => {
        s.time.advance(120_000);
        const p = s.credential.get(f.fetch).catch(() => undefined);
        await outcome();
        await p;
      };
      await attempt(() => f.fail('AUTH_REJECTED'));
      walked('ok', 'locked-out');
      await attempt(() => f.fail('AUTH_REJECTED')); // a repeat: nothing
      walked('locked-out', 'locked-out');
      await attempt(() => f.fail('HTTP_CONNECTION_REFUSED'));
      walked('locked-out', 'failing');
      await attempt(() => f.fail('AUTH_REJECTED'));
      walked('failing', 'locked-out');
      await attempt(() => f.succeed());
      walked('locked-out', 'ok');
      assert.deepEqual(topics(s.events), ['ok>token/locked-out', 'locked-out>token/failing', 'failing>token/locked-out', 'locked-out>token/recovered']);
    });

    it('backing-off → locked-out: a renewal refused for good is a lock-out even while the token lasts', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const got = s.credential.get(f.fetch);
      await f.succeed();
      await got;
      s.time.advance(0.8 * HOUR);
      await s.credential.get(f.fetch);
      await f.fail('HTTP_TIMEOUT');
      s.time.advance(5000);
      await s.credential.get(f.fetch);
      await f.fail('AUTH_REJECTED');
      walked('backing-off', 'locked-out');
      assert.deepEqual(topics(s.events), ['ok>token/backing-off', 'backing-off>token/locked-out']);
    });

    it('failing → backing-off cannot happen without a token; ok → failing → ok → backing-off are separate events', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const p1 = s.credential.get(f.fetch).catch(() => undefined);
      await f.fail('API_ERROR');
      await p1;
      s.time.advance(5000);
      const p2 = s.credential.get(f.fetch);
      await f.succeed();
      await p2;
      s.time.advance(0.8 * HOUR);
      await s.credential.get(f.fetch);
      await f.fail('API_ERROR');
      assert.deepEqual(topics(s.events), ['ok>token/failing', 'failing>token/recovered', 'ok>token/backing-off']);
    });

    it('an agent refused for good: agent/locked-out; an agent recovering: token/recovered', async () => {
      const agent = new FakeAgent();
      const s = setup({ agent });
      const f = fetcher(s.time);
      const p = s.credential.get(f.fetch).catch(() => undefined);
      await f.fail(AgentErrorCode.SECRET_EXPIRED);
      await p;
      s.time.advance(120_000);
      const q = s.credential.get(f.fetch);
      await f.succeed();
      await q;
      assert.deepEqual(topics(s.events), ['ok>agent/locked-out', 'locked-out>token/recovered']);
      assert.equal(s.entry().agent?.store.where, '/data/agents');
    });

    it('not-configured at start: token/not-configured; again on a redeploy: no repeat; configured again: token/recovered', () => {
      const time = new FakeTime();
      const registry = new HealthRegistry({ now: time.now, timers: time });
      const events: HealthEvent[] = [];
      registry.subscribe({ event: (e) => events.push(e) });
      const source = { id: 'c2', type: 'iiot-oauth2', platform: 'oauth2', platformLabel: 'OAuth 2.0', name: '', redact: (t: string) => t };
      const broken = { ...source, configError: new IiotAuthError(ErrorCode.CREDENTIALS_MISSING, 'enter the client secret') };
      registry.register(broken).close(false);
      walked('(new)', 'not-configured');
      registry.register(broken).close(false);
      walked('not-configured', 'not-configured');
      const engine = new TokenEngine({ now: time.now });
      const handle = registry.register({ ...source, credential: engine.credential('c2', 'fp') });
      walked('not-configured', 'ok');
      assert.deepEqual(topics(events), ['->token/not-configured', 'not-configured>token/recovered']);
      assert.deepEqual(registry.entry('c2')?.actions, { renew: true, rotate: false });
      handle.close(false);
      assert.equal(registry.entry('c2'), undefined, 'a stopped config node is not listed');
      assert.deepEqual(registry.entries(), []);
    });

    it('ok → not-configured (a redeploy breaks it): token/not-configured', () => {
      const s = setup();
      s.handle.close(false);
      s.registry.register({
        id: 'cfg1',
        type: 'iiot-oauth2',
        platform: 'oauth2',
        platformLabel: 'OAuth 2.0',
        name: '',
        configError: new IiotAuthError(ErrorCode.CONFIG_INVALID, 'the token URL is not a URL'),
        redact: (t) => t,
      });
      walked('ok', 'not-configured');
      assert.deepEqual(topics(s.events), ['ok>token/not-configured']);
      assert.deepEqual(s.entry().actions, { renew: false, rotate: false });
    });

    it("agent rotations: agent/rotated each time; agent/rotation-failed once until one succeeds; the failure's message redacted", () => {
      const agent = new FakeAgent();
      const s = setup({ agent });
      const failure = new IiotAuthError(ErrorCode.API_ERROR, `rotation refused for ${SECRET}`);
      agent.state = { ...agent.state, lastRotationFailure: { at: s.time.time, error: failure } };
      agent.tell({ kind: 'rotation-failed', error: failure });
      agent.tell({ kind: 'rotation-failed', error: failure });
      assert.equal(s.entry().agent?.lastRotationFailure?.code, 'API_ERROR');
      assert.ok(!JSON.stringify(s.entry()).includes(SECRET));
      const { lastRotationFailure: _, ...rest } = agent.state;
      agent.state = { ...rest, lastRotationAt: s.time.time };
      agent.tell({ kind: 'rotated' });
      agent.tell({ kind: 'rotated' });
      agent.tell({ kind: 'rotation-failed', error: failure });
      assert.deepEqual(
        s.events.map((e) => e.topic),
        ['agent/rotation-failed', 'agent/rotated', 'agent/rotated', 'agent/rotation-failed'],
      );
      assert.deepEqual(s.entry().actions, { renew: true, rotate: true });
    });
  });

  describe('counters and publishing', () => {
    it('a 401 re-login, API requests and 429 waits are counted; counter-only changes are published at most once per 5 s', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const got = s.credential.get(f.fetch);
      await f.succeed();
      const token = await got;
      const observer = s.registry.connectionObserver('cfg1');
      const before = s.published.length;
      observer.apiRequest(); // the first counter change after the last publish: how long ago decides
      observer.apiRequest();
      observer.rateLimitWait();
      assert.equal(s.published.length, before, 'counter-only changes within 5 s of the last publish wait');
      s.time.advance(COUNTS_COALESCE_MS);
      assert.equal(s.published.length, before + 1, 'then one publish with all of them');
      const last = s.published.at(-1) as HealthEntry;
      assert.equal(last.counts.apiRequests, 2);
      assert.equal(last.counts.rateLimitWaits, 1);
      assert.equal(s.credential.rejected(token.value), true);
      assert.equal(s.entry().counts.relogins, 1);
      s.time.advance(COUNTS_COALESCE_MS);
      observer.apiRequest();
      assert.equal(s.published.length, before + 3, 'the re-login changed the view (no token): published at once; a late counter change too');
    });

    it('a removed config node: published as removed, its counts gone, its timers cleared', async () => {
      const s = setup();
      const f = fetcher(s.time);
      const got = s.credential.get(f.fetch);
      await f.succeed();
      await got;
      assert.ok(s.time.pending > 0, 'the expiry timer runs');
      s.handle.close(true);
      assert.deepEqual(s.published.at(-1), { id: 'cfg1', removed: true });
      assert.equal(s.time.pending, 0);
      assert.equal(s.registry.entry('cfg1'), undefined);
    });

    it("an events node's memory: what happened before it started is told once, then never again", async () => {
      const s = setup();
      const f = fetcher(s.time);
      const p = s.credential.get(f.fetch).catch(() => undefined);
      await f.fail('AUTH_REJECTED');
      await p;
      const memory = s.registry.memory('events-1');
      assert.deepEqual(
        s.registry.untold(memory).map((e) => e.topic),
        ['token/locked-out'],
      );
      assert.deepEqual(s.registry.untold(memory), [], 'told once');
      s.registry.forget('events-1');
      assert.equal(s.registry.untold(s.registry.memory('events-1')).length, 1, 'a new node with that id is told again');
    });
  });

  describe('warning windows', () => {
    const now = Date.parse('2026-12-01T00:00:00Z');
    const agentEntry = (expiresInMs: number, rotateInMs?: number): HealthEntry => ({
      id: 'a1',
      type: 'iiot-insights-hub-agent',
      platform: 'insights-hub-agent',
      platformLabel: 'Insights Hub agent',
      name: '',
      state: 'ok',
      stateText: '',
      counts: zeroCounts(),
      actions: { renew: true, rotate: true },
      agent: {
        clientId: 'a1',
        onboarded: true,
        profile: 'SHARED_SECRET',
        registrationsKept: 1,
        store: { kind: 'file', where: '/x' },
        clientSecretExpiresAt: new Date(now + expiresInMs).toISOString(),
        ...(rotateInMs !== undefined ? { rotateAt: new Date(now + rotateInMs).toISOString() } : {}),
      },
    });
    const window = 3 * DAY_MS;

    it('outside the window: none; inside: one; again within a day: none; a day later: one more', () => {
      const warned = new Map<string, number>();
      assert.equal(expiryWarnings([agentEntry(4 * DAY_MS)], now, window, warned).length, 0);
      assert.equal(nextWarningCheck([agentEntry(4 * DAY_MS)], now, window, warned), now + DAY_MS);
      const entry = agentEntry(2 * DAY_MS);
      assert.deepEqual(
        expiryWarnings([entry], now, window, warned).map((e) => e.topic),
        ['agent/secret-expiring'],
      );
      assert.equal(expiryWarnings([entry], now + 23 * HOUR, window, warned).length, 0);
      assert.equal(nextWarningCheck([entry], now + HOUR, window, warned), now + DAY_MS);
      assert.equal(expiryWarnings([entry], now + DAY_MS, window, warned).length, 1);
    });

    it('a rotation still to come renews the secret: no warning before the rotation point, one after it', () => {
      const warned = new Map<string, number>();
      const entry = agentEntry(2 * DAY_MS, 12 * HOUR);
      assert.equal(expiryWarnings([entry], now, window, warned).length, 0);
      assert.equal(nextWarningCheck([entry], now, window, warned), now + 12 * HOUR);
      assert.equal(expiryWarnings([entry], now + 12 * HOUR, window, warned).length, 1);
    });

    it('an expired secret, a non-agent, a window in hours', () => {
      const warned = new Map<string, number>();
      assert.equal(expiryWarnings([agentEntry(-1)], now, window, warned).length, 0, 'expired: the lock-out says it');
      const { agent: _, ...plain } = agentEntry(HOUR);
      assert.equal(expiryWarnings([plain as HealthEntry], now, window, warned).length, 0);
      assert.equal(expiryWarnings([agentEntry(5 * HOUR)], now, 4 * HOUR, warned).length, 0);
      assert.equal(expiryWarnings([agentEntry(3 * HOUR)], now, 4 * HOUR, warned).length, 1);
    });
  });

  describe('metrics', () => {
    it('counters and gauges with HELP and TYPE; label values escaped; one state gauge per state', async () => {
      const s = setup({ id: 'cfg"\\\nx' });
      const f = fetcher(s.time);
      const got = s.credential.get(f.fetch);
      await f.succeed();
      await got;
      const text = metricsText(s.registry.entries());
      assert.match(text, /^# HELP iiot_auth_token_requests_total .+\n# TYPE iiot_auth_token_requests_total counter\n/m);
      assert.ok(text.includes('iiot_auth_token_requests_total{platform="oauth2",config="cfg\\"\\\\\\nx",name="line 7"} 1\n'), text);
      assert.ok(text.includes('iiot_auth_credential_state{platform="oauth2",config="cfg\\"\\\\\\nx",name="line 7",state="ok"} 1'));
      assert.ok(text.includes('state="failing"} 0'));
      assert.match(text, /iiot_auth_token_expiry_timestamp_seconds\{[^}]+\} \d+(\.\d+)?\n/);
      assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
      // Every sample line: name{labels} value, nothing else.
      for (const line of text.trim().split('\n')) {
        if (!line.startsWith('#')) assert.match(line, /^[a-z_]+\{([a-z]+="([^"\\\n]|\\["\\n])*",?)+\} [-+0-9.eInfNa]+$/, line);
      }
    });
  });
});
