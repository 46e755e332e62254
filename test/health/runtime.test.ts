import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import helper from 'node-red-node-test-helper';
import type { HealthEntry } from '../../src/health/model.js';
import agentNode from '../../src/nodes/iiot-agent.js';
import eventsNode from '../../src/nodes/iiot-auth-events.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import type { NodeMessage } from '../../src/nodes/node-red.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H, type FlowNode, uid } from '../helpers/flow.js';
import { outcomeOf } from '../helpers/outcome.js';
import { agentFlow, CONFIG_NODE_MODULES, PLATFORM_CASES, type PlatformFlow, platformFlow } from '../helpers/platform-flows.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { TEST_BACKOFF } from '../helpers/settings.js';
import { deliveries, waitFor } from '../helpers/wait.js';
import { assertNoLeaks } from '../security/harness.js';

/**
 * The health model in a real Node-RED runtime against the sandbox: faults
 * (token endpoint down, 401 storms, rotation refused, lock-out) produce the
 * documented states and exactly the documented events (the auth events node
 * sends one per transition, none for repeats); the admin routes answer as the
 * contract says (renew and rotate in single flight, 415, 404, 400, 409); the
 * comms carry each change and a removal. Everything the endpoints, the
 * metrics, the comms and the events node gave out, and everything the
 * runtime emitted, is searched for every secret of the flows.
 */
const modules = [...CONFIG_NODE_MODULES, tokenNode, requestNode, agentNode, eventsNode];
const oauth2 = PLATFORM_CASES.find((p) => p.platform === 'oauth2')!;
const TOKEN_ENDPOINT_DOWN = { kind: 'status', status: 503, body: '{"error":"temporarily_unavailable"}' } as const;
const INVALID_CLIENT = { kind: 'status', status: 401, body: '{"error":"invalid_client","error_description":"Client authentication failed"}' } as const;

interface Comms {
  topic: string;
  data: unknown;
}

describe('health in a Node-RED runtime', function () {
  this.timeout(60_000);
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-health-'));
  const env = withSandboxAndRuntime({ settings: { iiotAuth: { ...TEST_BACKOFF, agentStateDir: stateDir } } });
  let sandbox: Sandbox;
  /** Everything the routes, the comms and the events node gave out, for the leak search. */
  let given: string[];
  let comms: Comms[];
  const onComms = (message: Comms) => {
    if (message.topic === 'iiot-auth/health') {
      comms.push(message);
      given.push(JSON.stringify(message.data));
    }
  };
  const runtimeEvents = () => (helper as unknown as { _events: NodeJS.EventEmitter })._events;

  before(() => {
    sandbox = env.sandbox;
  });
  beforeEach(() => {
    given = [];
    comms = [];
    runtimeEvents().on('comms', onComms);
  });
  afterEach(() => {
    runtimeEvents().off('comms', onComms);
  });
  after(() => fs.rmSync(stateDir, { recursive: true, force: true }));

  /** The flow with an events node watching its config node; the events it sends are collected. */
  async function load(
    f: PlatformFlow | { ids: { config: string }; nodes: FlowNode[]; credentials: Record<string, Record<string, string>> },
    eventsConfig: Record<string, unknown> = {},
  ) {
    const ids = { events: uid('ev'), eventsOut: uid('evout') };
    const nodes: FlowNode[] = [
      ...f.nodes,
      { id: ids.events, type: 'iiot-auth-events', configs: [f.ids.config], ...eventsConfig, wires: [[ids.eventsOut]] },
      { id: ids.eventsOut, type: 'helper' },
    ];
    await H.load(modules, nodes, f.credentials);
    const events: NodeMessage[] = [];
    H.node(ids.eventsOut).on('input', (msg: NodeMessage) => {
      events.push(msg);
      given.push(JSON.stringify(msg));
    });
    // What was sent is delivered before the events are read: a late duplicate would show.
    return {
      events,
      topics: async () => {
        await deliveries();
        return events.map((e) => e.topic);
      },
    };
  }

  async function entry(id: string): Promise<HealthEntry> {
    const res = await H.request().get('/iiot-auth/health');
    assert.equal(res.status, 200);
    given.push(res.text);
    const found = (res.body.credentials as HealthEntry[]).find((e) => e.id === id);
    assert.ok(found, `no entry for ${id} in ${res.text}`);
    return found;
  }

  async function metrics(): Promise<string> {
    const res = await H.request().get('/iiot-auth/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain;/);
    assert.match(String(res.headers['content-type']), /version=0\.0\.4/);
    given.push(res.text);
    return res.text;
  }

  async function post(id: string, action: 'renew' | 'rotate') {
    const res = await H.request()
      .post(`/iiot-auth/health/${encodeURIComponent(id)}/${action}`)
      .send({});
    given.push(res.text);
    return res;
  }

  async function waitForState(id: string, state: string) {
    return waitFor(
      async () => {
        const e = await entry(id);
        return e.state === state ? e : undefined;
      },
      { what: `${id} to be ${state}` },
    );
  }

  /** Sends a message through the authenticated request node and waits for its outcome, after any back-off. */
  async function message(f: PlatformFlow) {
    await H.backoffOver(f.ids.config);
    return outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
  }

  function assertNothingLeaked(secrets: string[], context: string) {
    const text = given.join('\n');
    for (const secret of secrets.filter((s) => s.length >= 6))
      assert.ok(!text.includes(secret), `${context}: a secret in what the routes, comms or events gave out`);
    assertNoLeaks(secrets, context);
  }

  it('token endpoint down then back: failing, then ok; token/failing once however many messages fail, token/recovered once', async () => {
    const f = platformFlow(oauth2, sandbox);
    const ev = await load(f);
    sandbox.fault('oauth2.token', TOKEN_ENDPOINT_DOWN);
    for (let i = 0; i < 3; i++) assert.equal((await message(f)).kind, 'error');
    const failing = await entry(f.ids.config);
    assert.equal(failing.state, 'failing');
    assert.equal(failing.lastFailure?.code, 'TOKEN_ENDPOINT_ERROR');
    assert.match(failing.stateText, /^token endpoint failing: TOKEN_ENDPOINT_ERROR/);
    assert.equal(failing.counts.failures, 3);
    assert.match(await metrics(), new RegExp(`iiot_auth_credential_state\\{platform="oauth2",config="${f.ids.config}",name="",state="failing"\\} 1`));
    sandbox.clearFaults();
    assert.equal((await message(f)).kind, 'output');
    await waitForState(f.ids.config, 'ok');
    assert.deepEqual(await ev.topics(), ['token/failing', 'token/recovered']);
    assert.equal(ev.events[0]!.previous, 'ok');
    assert.equal(ev.events[1]!.previous, 'failing');
    assert.equal((ev.events[1]!.payload as HealthEntry).state, 'ok');
    assertNothingLeaked(oauth2.secrets(sandbox), 'endpoint down');
  });

  it('a renewal that fails while the token is valid: backing-off (renew now answers 502 with the code), then renew now recovers: token/backing-off, token/recovered', async () => {
    const f = platformFlow(oauth2, sandbox);
    const ev = await load(f);
    assert.equal((await message(f)).kind, 'output');
    sandbox.fault('oauth2.token', TOKEN_ENDPOINT_DOWN);
    const refused = await post(f.ids.config, 'renew');
    assert.equal(refused.status, 502, refused.text);
    assert.equal(refused.body.code, 'TOKEN_ENDPOINT_ERROR');
    const backingOff = await entry(f.ids.config);
    assert.equal(backingOff.state, 'backing-off');
    assert.equal((await message(f)).kind, 'output', 'messages still work with the token held');
    sandbox.clearFaults();
    const renewed = await post(f.ids.config, 'renew');
    assert.equal(renewed.status, 200, renewed.text);
    assert.equal((renewed.body as HealthEntry).state, 'ok');
    assert.equal((renewed.body as HealthEntry).counts.renewals, 2);
    assert.deepEqual(await ev.topics(), ['token/backing-off', 'token/recovered']);
    assertNothingLeaked(oauth2.secrets(sandbox), 'backing off');
  });

  it('a 401 storm on the token endpoint (invalid_client): locked-out, token/locked-out once; recovered when accepted again', async () => {
    const f = platformFlow(oauth2, sandbox);
    const ev = await load(f);
    sandbox.fault('oauth2.token', INVALID_CLIENT);
    for (let i = 0; i < 3; i++) assert.equal((await message(f)).kind, 'error');
    const locked = await entry(f.ids.config);
    assert.equal(locked.state, 'locked-out');
    assert.equal(locked.lastFailure?.code, 'AUTH_REJECTED');
    sandbox.clearFaults();
    assert.equal((await message(f)).kind, 'output');
    await waitForState(f.ids.config, 'ok');
    assert.deepEqual(await ev.topics(), ['token/locked-out', 'token/recovered']);
    assertNothingLeaked(oauth2.secrets(sandbox), '401 storm on the token endpoint');
  });

  it('a 401 storm on the API: re-logins and API requests counted, the state stays ok, no event', async () => {
    const f = platformFlow(oauth2, sandbox);
    const ev = await load(f);
    sandbox.fault('oauth2.items', { kind: 'status', status: 401, body: '{"error":"invalid_token"}' });
    for (let i = 0; i < 3; i++) await message(f);
    const e = await entry(f.ids.config);
    assert.equal(e.state, 'ok');
    assert.ok(e.counts.relogins >= 1, JSON.stringify(e.counts));
    assert.equal(e.counts.apiRequests, 3);
    assert.equal(e.counts.tokenRequests, sandbox.calls('oauth2.token'), 'every token request the sandbox saw is counted');
    assert.deepEqual(await ev.topics(), []);
    assertNothingLeaked(oauth2.secrets(sandbox), '401 storm on the API');
  });

  it('a 429 waited out is counted, the request goes on: no event', async () => {
    const f = platformFlow(oauth2, sandbox);
    const ev = await load(f);
    sandbox.fault('oauth2.items', { kind: 'status', status: 429, headers: { 'retry-after': '0' }, times: 2 });
    const outcome = await message(f);
    assert.equal(outcome.kind, 'output');
    assert.equal(outcome.msg.statusCode, 200);
    const e = await entry(f.ids.config);
    assert.equal(e.counts.rateLimitWaits, 2);
    assert.equal(e.counts.apiRequests, 1);
    assert.match(await metrics(), new RegExp(`iiot_auth_rate_limit_waits_total\\{platform="oauth2",config="${f.ids.config}",name=""\\} 2`));
    assert.deepEqual(await ev.topics(), []);
  });

  it('a config node without credentials: not-configured, token/not-configured told when the events node starts; renew answers 409 with its code', async () => {
    const f = platformFlow(oauth2, sandbox, { credentials: {} });
    const ev = await load(f);
    await waitFor(() => ev.events.length > 0, { what: 'the not-configured event' });
    assert.deepEqual(await ev.topics(), ['token/not-configured']);
    const e = await entry(f.ids.config);
    assert.equal(e.state, 'not-configured');
    assert.match(e.stateText, /^not configured: CREDENTIALS_MISSING/);
    assert.deepEqual(e.actions, { renew: false, rotate: false });
    const res = await post(f.ids.config, 'renew');
    assert.equal(res.status, 409);
    assert.equal(res.body.code, 'CREDENTIALS_MISSING');
  });

  it('renew now pressed 5 times at once: one token request; the answers show the new token', async () => {
    const f = platformFlow(oauth2, sandbox);
    await load(f);
    assert.equal((await message(f)).kind, 'output');
    const before = await entry(f.ids.config);
    sandbox.resetCalls();
    sandbox.fault('oauth2.token', { kind: 'delay', ms: 1500, times: 1 });
    const first = post(f.ids.config, 'renew');
    await waitForState(f.ids.config, 'renewing');
    const rest = [1, 2, 3, 4].map(() => post(f.ids.config, 'renew'));
    const answers = await Promise.all([first, ...rest]);
    for (const res of answers) {
      assert.equal(res.status, 200, res.text);
      assert.equal((res.body as HealthEntry).state, 'ok');
      assert.notEqual((res.body as HealthEntry).tokenExpiresAt, undefined);
    }
    assert.equal(sandbox.calls('oauth2.token'), 1);
    const after = await entry(f.ids.config);
    assert.equal(after.counts.tokenRequests, before.counts.tokenRequests + 1);
    assertNothingLeaked(oauth2.secrets(sandbox), 'renew');
  });

  it('the selected config nodes only: a second one failing sends nothing', async () => {
    const f = platformFlow(oauth2, sandbox);
    const other = uid('cfg');
    const ev = await load({
      ...f,
      nodes: [...f.nodes, { id: other, type: oauth2.configType, ...oauth2.config(sandbox) }],
      credentials: { ...f.credentials, [other]: oauth2.credentials(sandbox) },
    });
    sandbox.fault('oauth2.token', TOKEN_ENDPOINT_DOWN);
    assert.equal((await post(other, 'renew')).status, 502);
    await waitForState(other, 'failing');
    assert.deepEqual(await ev.topics(), []);
    assert.equal((await message(f)).kind, 'error');
    assert.deepEqual(await ev.topics(), ['token/failing']);
    assert.equal((ev.events[0]!.payload as HealthEntry).id, f.ids.config);
  });

  it('the actions: JSON only (415), an unknown id (404 NOT_FOUND), rotate on a non-agent (400)', async () => {
    const f = platformFlow(oauth2, sandbox);
    await load(f);
    const form = await H.request().post(`/iiot-auth/health/${f.ids.config}/renew`).set('content-type', 'application/x-www-form-urlencoded').send('a=b');
    assert.equal(form.status, 415);
    assert.equal(form.body.code, 'INPUT_INVALID');
    const text = await H.request().post(`/iiot-auth/health/${f.ids.config}/rotate`).set('content-type', 'text/plain').send('{}');
    assert.equal(text.status, 415);
    const unknown = await post('no-such-node', 'renew');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'NOT_FOUND');
    const rotate = await post(f.ids.config, 'rotate');
    assert.equal(rotate.status, 400);
    assert.equal(rotate.body.code, 'INPUT_INVALID');
    assert.equal(sandbox.calls('oauth2.token'), 0, 'nothing was sent');
  });

  it('comms: each change of the view published; a removed config node published as removed', async () => {
    const f = platformFlow(oauth2, sandbox);
    await load(f);
    assert.equal((await message(f)).kind, 'output');
    const mine = () => comms.map((c) => c.data as HealthEntry | { id: string; removed: true }).filter((d) => d.id === f.ids.config);
    await waitFor(() => mine().some((d) => 'state' in d && d.state === 'ok' && d.tokenExpiresAt), { what: 'the ok entry published' });
    assert.ok(
      mine().some((d) => 'state' in d && d.state === 'renewing'),
      'the token request was published',
    );
    await H.redeploy(
      f.nodes.filter((n) => n.id !== f.ids.config),
      'full',
    );
    await waitFor(() => mine().some((d) => 'removed' in d), { what: 'the removal published' });
    assert.deepEqual(mine().at(-1), { id: f.ids.config, removed: true });
    const res = await H.request().get('/iiot-auth/health');
    assert.ok(!(res.body.credentials as HealthEntry[]).some((e) => e.id === f.ids.config));
    assertNothingLeaked(oauth2.secrets(sandbox), 'comms');
  });

  describe('an Insights Hub agent', () => {
    /** Every secret the agent has: its IAT, and the client secrets and registration access tokens onboarding and rotation stored. */
    function agentSecrets(agentId: string, iat: string): string[] {
      const file = path.join(stateDir, `${agentId}.json`);
      const state = fs.existsSync(file)
        ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { registrations: Array<{ clientSecret?: string; registrationAccessToken?: string }> })
        : { registrations: [] };
      return [iat, ...state.registrations.flatMap((r) => [r.clientSecret ?? '', r.registrationAccessToken ?? ''])];
    }

    async function onboardedAgent() {
      const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
      const boarding = sandbox.agents.boardingConfiguration(record.id);
      const flow = agentFlow(sandbox, JSON.stringify(boarding), { withApp: true });
      const f = { ...flow, ids: { ...flow.ids, config: flow.ids.agentConfig } };
      const ev = await load(f);
      const got = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
      assert.equal(got.kind, 'output');
      return { f, ev, agentId: record.id, iat: boarding.content.iat };
    }

    it('the entry shows the agent: onboarded, profile, secret expiry, next rotation, store; rotate now pressed 3 times at once rotates once and ends with a token', async () => {
      const { f, ev, agentId, iat } = await onboardedAgent();
      const e = await entry(f.ids.config);
      assert.equal(e.platform, 'insights-hub-agent');
      assert.equal(e.agent?.onboarded, true);
      assert.equal(e.agent?.profile, 'SHARED_SECRET');
      assert.equal(e.agent?.store.kind, 'file');
      assert.equal(e.agent?.store.where, stateDir);
      assert.ok(e.agent?.clientSecretExpiresAt && e.agent.rotateAt && e.agent.rotateAt < e.agent.clientSecretExpiresAt);
      assert.deepEqual(e.actions, { renew: true, rotate: true });
      assert.match(await metrics(), /iiot_auth_agent_client_secret_expiry_timestamp_seconds\{platform="insights-hub-agent"/);
      sandbox.resetCalls();
      sandbox.fault('agents.rotate', { kind: 'delay', ms: 500, times: 1 });
      const answers = await Promise.all([1, 2, 3].map(() => post(f.ids.config, 'rotate')));
      for (const res of answers) {
        assert.equal(res.status, 200, res.text);
        assert.equal((res.body as HealthEntry).state, 'ok');
        assert.ok((res.body as HealthEntry).agent?.lastRotationAt);
      }
      assert.equal(sandbox.calls('agents.rotate'), 1);
      assert.equal(sandbox.agents.status(agentId).activeRegistration!.number, 2, 'the rotated credentials produced a token');
      assert.deepEqual(await ev.topics(), ['agent/rotated']);
      assert.equal(ev.events[0]!.previous, undefined, 'a rotation is not a change of state');
      assertNothingLeaked(agentSecrets(agentId, iat), 'agent rotate');
    });

    it('deployed again (a restart): the entry shows the stored agent at once, read from the store, with no request to the platform', async () => {
      const { f } = await onboardedAgent();
      await H.unload(); // the test helper's next load is a fresh runtime: nothing cached
      sandbox.resetCalls();
      await H.load(modules, f.nodes, f.credentials);
      const e = await waitFor(
        async () => {
          const found = await entry(f.ids.config);
          return found.agent?.onboarded ? found : undefined;
        },
        { what: 'the stored agent in the entry' },
      );
      assert.ok(e.agent?.clientSecretExpiresAt && e.agent.rotateAt);
      assert.equal(e.tokenExpiresAt, undefined, 'no token taken');
      assert.deepEqual(
        ['agents.token', 'agents.register', 'agents.rotate'].map((name) => sandbox.calls(name as 'agents.token')),
        [0, 0, 0],
      );
    });

    it('rotation refused: rotate now answers with the code, agent/rotation-failed once for two refusals; then agent/rotated', async () => {
      const { f, ev, agentId, iat } = await onboardedAgent();
      sandbox.fault('agents.rotate', { kind: 'status', status: 500, body: '{"error":"server_error"}' });
      for (let i = 0; i < 2; i++) {
        const res = await post(f.ids.config, 'rotate');
        assert.equal(res.status, 502, res.text);
        assert.ok(res.body.code);
      }
      const failed = await entry(f.ids.config);
      assert.ok(failed.agent?.lastRotationFailure?.code);
      assert.equal(failed.state, 'ok', 'the current credentials still work');
      sandbox.clearFaults();
      assert.equal((await post(f.ids.config, 'rotate')).status, 200);
      assert.equal((await entry(f.ids.config)).agent?.lastRotationFailure, undefined);
      assert.deepEqual(await ev.topics(), ['agent/rotation-failed', 'agent/rotated']);
      assertNothingLeaked(agentSecrets(agentId, iat), 'rotation refused');
    });

    it("an idle agent whose rotation point passed with its secret inside the window: agent/secret-expiring once, from the node's timer alone", async () => {
      const lifetime = sandbox.lifetimes.agentClientSecret;
      sandbox.lifetimes.agentClientSecret = 10; // the rotation point 6.5 to 7.5 s after onboarding, the expiry at 10 s
      try {
        const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
        const boarding = sandbox.agents.boardingConfiguration(record.id);
        const flow = agentFlow(sandbox, JSON.stringify(boarding), { withApp: false });
        const f = { ...flow, ids: { ...flow.ids, config: flow.ids.agentConfig } };
        const ev = await load(f, { warnDays: 1 / 24 }); // one hour
        assert.equal((await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}))).kind, 'output');
        const e = await entry(f.ids.config);
        const expires = Date.parse(e.agent!.clientSecretExpiresAt!);
        assert.ok(Date.parse(e.agent!.rotateAt!) > Date.now(), 'not warned yet: the rotation would renew it');
        assert.deepEqual(await ev.topics(), []);
        // No message from here on: only the events node's timer can notice.
        await waitFor(() => ev.events.length > 0, { what: 'the warning', timeoutMs: 20_000 });
        await waitFor(() => Date.now() > expires + 1000, { what: 'the secret to expire', timeoutMs: 20_000 });
        assert.deepEqual(await ev.topics(), ['agent/secret-expiring']);
        const warned = ev.events[0]!.payload as HealthEntry;
        assert.equal(warned.agent?.clientSecretExpiresAt, e.agent!.clientSecretExpiresAt);
        assertNothingLeaked(agentSecrets(record.id, boarding.content.iat), 'secret expiring');
      } finally {
        sandbox.lifetimes.agentClientSecret = lifetime;
      }
    });

    it('offboarded: the next token request is refused for good: locked-out, agent/locked-out once', async () => {
      const { f, ev, agentId, iat } = await onboardedAgent();
      await H.answer(f.ids.agent, f.ids.out, { action: 'offboard' });
      for (let i = 0; i < 2; i++) {
        await H.backoffOver(f.ids.config);
        assert.equal((await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}))).kind, 'error');
      }
      const e = await waitForState(f.ids.config, 'locked-out');
      assert.equal(e.lastFailure?.code, 'OFFBOARDED');
      assert.equal(e.agent?.onboarded, false);
      assert.deepEqual(await ev.topics(), ['agent/locked-out']);
      assertNothingLeaked(agentSecrets(agentId, iat), 'offboarded');
    });
  });
});
