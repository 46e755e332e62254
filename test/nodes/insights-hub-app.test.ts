import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/sandbox/index.js';
import insightsHubAppNode from '../../src/nodes/iiot-insights-hub-app.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import { deadPort } from '../helpers/servers.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { FlowHarness as H, uid, type FlowNode } from '../helpers/flow.js';
import { insightsHubAppConfig, insightsHubAppCredentials } from '../helpers/platform-flows.js';
import { waitFor } from '../helpers/wait.js';

const modules = [insightsHubAppNode, tokenNode, requestNode];

/**
 * Insights Hub app credentials end to end: get token and authenticated
 * request in a real Node-RED runtime against the sandbox over loopback HTTP.
 */
describe('Insights Hub app: get token and authenticated request', function () {
  this.timeout(30_000);
  let sandbox: Sandbox;
  let secrets: string[];

  const env = withSandboxAndRuntime();
  before(() => {
    sandbox = env.sandbox;
    secrets = [sandbox.demo.insightsHubApp.clientSecret];
  });
  afterEach(() => {
    sandbox.lifetimes.insightsHubAppToken = 1800;
  });

  /** A flow: config → token node and request node, each wired to a collector; a catch node collects errors. */
  function flow(overrides: Record<string, unknown> = {}, requestProps: Record<string, unknown> = {}) {
    const ids = { config: uid('cfg'), token: uid('tok'), request: uid('req'), out: uid('out'), errors: uid('err') };
    const nodes: FlowNode[] = [
      insightsHubAppConfig(ids.config, sandbox, overrides),
      { id: ids.token, type: 'iiot-token', platform: 'insights-hub-app', insightsHubApp: ids.config, wires: [[ids.out]] },
      {
        id: ids.request,
        type: 'iiot-request',
        platform: 'insights-hub-app',
        insightsHubApp: ids.config,
        method: 'GET',
        url: '/api/identitymanagement/v3/Users',
        ret: 'obj',
        ...requestProps,
        wires: [[ids.out]],
      },
      { id: ids.out, type: 'helper' },
      { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
      { id: ids.errors, type: 'helper' },
    ];
    const credentials: Record<string, Record<string, string>> = { [ids.config]: insightsHubAppCredentials(sandbox) };
    return { ids, nodes, credentials };
  }

  async function loadFlow(overrides: Record<string, unknown> = {}, requestProps: Record<string, unknown> = {}, creds?: Record<string, string>) {
    const f = flow(overrides, requestProps);
    if (creds) f.credentials[f.ids.config] = creds;
    await H.load(modules, f.nodes, f.credentials);
    return f;
  }

  it('get token puts the bearer token on msg.headers and msg.token, for a core http request node to use', async () => {
    const { ids } = await loadFlow();
    const out = H.collect(ids.out, 1);
    H.node(ids.token).receive({ payload: 'go', headers: { Authorization: 'stale', accept: 'application/json' } });
    const [msg] = await out;
    const token = msg!.token as { platform: string; type: string; value: string; expiresAt: string; headers: Record<string, string> };
    assert.equal(token.platform, 'insights-hub-app');
    assert.equal(token.type, 'bearer');
    assert.equal(token.value.split('.').length, 3, 'a JWT');
    assert.deepEqual(msg!.headers, { accept: 'application/json', authorization: `Bearer ${token.value}` });
    assert.deepEqual(token.headers, { authorization: `Bearer ${token.value}` });
    const expires = Date.parse(token.expiresAt) - Date.now();
    assert.ok(expires > 1700_000 && expires <= 1800_000, `expires in ${expires} ms`);
    assert.equal(msg!.payload, 'go');
    // The token really works: the sandbox's protected resource accepts it.
    const users = await fetch(`${sandbox.url}/api/identitymanagement/v3/Users`, { headers: msg!.headers as Record<string, string> });
    assert.equal(users.status, 200);
    assert.deepEqual(H.statuses(ids.token).at(-1), { fill: 'green', shape: 'dot', text: 'node-red-contrib-iiot-auth/iiot-token:common.status.authenticated' });
    assert.deepEqual(H.leaks(secrets), []);
  });

  it('authenticated request calls a gateway API relative to the gateway URL, in the core node message shape', async () => {
    const { ids } = await loadFlow();
    const out = H.collect(ids.out, 1);
    H.node(ids.request).receive({ payload: 'ignored for GET' });
    const [msg] = await out;
    assert.equal(msg!.statusCode, 200);
    assert.equal(msg!.responseUrl, `${sandbox.url}/api/identitymanagement/v3/Users`);
    assert.equal(typeof msg!.payload, 'object');
    assert.ok(Array.isArray((msg!.payload as { resources?: unknown[] }).resources));
    assert.match(String((msg!.headers as Record<string, string>)['content-type']), /json/);
    assert.equal(sandbox.calls('insightsHub.token'), 1);
    assert.deepEqual(H.leaks(secrets), []);
  });

  it('1,000 concurrent messages with a cold cache cost exactly one token request', async () => {
    const { ids } = await loadFlow();
    const count = 1000;
    const out = H.collect(ids.out, count * 2, 60_000);
    for (let i = 0; i < count; i++) {
      H.node(ids.token).receive({ i });
      H.node(ids.request).receive({ i });
    }
    const msgs = await out;
    assert.equal(msgs.length, 2000);
    assert.equal(sandbox.calls('insightsHub.token'), 1);
    assert.equal(sandbox.calls('insightsHub.users'), count);
    assert.ok(msgs.filter((m) => 'statusCode' in m).every((m) => m.statusCode === 200));
    assert.equal(new Set(msgs.filter((m) => m.token).map((m) => (m.token as { value: string }).value)).size, 1);
  });

  it('renews the token before it expires, with no request failing', async () => {
    sandbox.lifetimes.insightsHubAppToken = 2;
    const { ids } = await loadFlow();
    const results: Array<{ statusCode: unknown }> = [];
    // A request every 100 ms until one is sent with the third token: a 2 s token is renewed at 75–85 % of
    // its life, so that is two renewals, and no 401 on the way.
    const request = async () => {
      const tokens = sandbox.calls('insightsHub.token');
      const out = H.collect(ids.out, 1);
      H.node(ids.request).receive({});
      results.push({ statusCode: (await out)[0]!.statusCode });
      return tokens >= 3;
    };
    await waitFor(request, { timeoutMs: 15_000, intervalMs: 100, what: () => `a third token: ${sandbox.calls('insightsHub.token')} so far` });
    assert.ok(results.length > 10, `${results.length} requests: at least one every 300 ms across both renewals`);
    assert.ok(
      results.every((r) => r.statusCode === 200),
      JSON.stringify(results),
    );
  });

  it('a 401 from the API drops the token, fetches a new one and retries the call once', async () => {
    const { ids } = await loadFlow();
    const out1 = H.collect(ids.out, 1);
    H.node(ids.request).receive({});
    await out1;
    sandbox.revokeTokens();
    const out2 = H.collect(ids.out, 1);
    H.node(ids.request).receive({});
    const [msg] = await out2;
    assert.equal(msg!.statusCode, 200);
    assert.equal(sandbox.calls('insightsHub.token'), 2);
    assert.equal(sandbox.calls('insightsHub.users'), 3);
  });

  it('a 401 that persists after the retry is passed on as a normal output', async () => {
    const { ids } = await loadFlow();
    sandbox.fault('insightsHub.users', { kind: 'status', status: 401 });
    const out = H.collect(ids.out, 1);
    H.node(ids.request).receive({});
    const [msg] = await out;
    assert.equal(msg!.statusCode, 401);
    assert.equal(sandbox.calls('insightsHub.users'), 2, 'retried exactly once');
    assert.equal(H.statuses(ids.request).at(-1)!.fill, 'red');
  });

  it('wrong credentials: a clear error per message to Catch, red status, no secret anywhere', async () => {
    const wrong = 'wrong-secret-value-1234';
    const { ids } = await loadFlow({}, {}, { clientId: sandbox.demo.insightsHubApp.clientId, clientSecret: wrong });
    const errors = H.collect(ids.errors, 2);
    H.node(ids.token).receive({ n: 1 });
    H.node(ids.request).receive({ n: 2 });
    const caught = await errors;
    for (const msg of caught) {
      const error = msg.error as { code: string; message: string };
      assert.equal(error.code, 'AUTH_REJECTED');
      assert.match(error.message, /rejected the credentials \(401\)/);
      assert.match(error.message, /Developer or Operator Cockpit/);
    }
    assert.equal(H.statuses(ids.token).at(-1)!.fill, 'red');
    assert.equal(sandbox.calls('insightsHub.token'), 1, 'the second message waits out the back-off instead of hammering');
    assert.deepEqual(H.leaks([...secrets, wrong]), []);
  });

  it('token endpoint down, then back: errors meanwhile, recovery by itself', async () => {
    const { ids } = await loadFlow();
    sandbox.fault('insightsHub.token', { kind: 'refuse' });
    const errors = H.collect(ids.errors, 1);
    H.node(ids.request).receive({});
    const [caught] = await errors;
    assert.equal((caught!.error as { code: string }).code, 'HTTP_CONNECTION_RESET');
    sandbox.clearFaults();
    await H.backoffOver(ids.config);
    const out = H.collect(ids.out, 1);
    H.node(ids.request).receive({});
    assert.equal((await out)[0]!.statusCode, 200);
    assert.equal(H.statuses(ids.request).at(-1)!.fill, 'green');
  });

  it('a dead server: connection refused, reported per message', async () => {
    const port = await deadPort();
    const { ids } = await loadFlow({ gateway: `http://127.0.0.1:${port}` });
    const errors = H.collect(ids.errors, 1);
    H.node(ids.token).receive({});
    assert.equal(((await errors)[0]!.error as { code: string }).code, 'HTTP_CONNECTION_REFUSED');
  });

  it('a token endpoint that answers 500, then malformed JSON, then an oversized body: each a clear error', async () => {
    const { ids } = await loadFlow();
    const cases: [Parameters<Sandbox['fault']>[1], string][] = [
      [{ kind: 'status', status: 500 }, 'TOKEN_ENDPOINT_ERROR'],
      [{ kind: 'malformed' }, 'TOKEN_RESPONSE_INVALID'],
      [{ kind: 'oversized', bytes: 4 * 1024 * 1024 }, 'HTTP_RESPONSE_TOO_LARGE'],
    ];
    for (const [fault, code] of cases) {
      sandbox.fault('insightsHub.token', fault);
      await H.backoffOver(ids.config); // the back-off of the previous case
      const errors = H.collect(ids.errors, 1);
      H.node(ids.token).receive({});
      const error = (await errors)[0]!.error as { code: string; message: string };
      assert.equal(error.code, code, error.message);
    }
  });

  it('times out a slow API, per msg.requestTimeout, to Catch', async () => {
    const { ids } = await loadFlow();
    sandbox.fault('insightsHub.users', { kind: 'delay', ms: 2000 });
    const errors = H.collect(ids.errors, 1);
    H.node(ids.request).receive({ requestTimeout: 200 });
    const error = (await errors)[0]!.error as { code: string; message: string };
    assert.equal(error.code, 'HTTP_TIMEOUT');
    assert.match(error.message, /200 ms/);
  });

  it('an oversized or malformed API response', async () => {
    const { ids } = await loadFlow();
    sandbox.fault('insightsHub.users', { kind: 'malformed', times: 1 });
    const out = H.collect(ids.out, 1);
    H.node(ids.request).receive({});
    const [msg] = await out;
    assert.equal(typeof msg!.payload, 'string', 'unparseable JSON is passed on as text, with a warning');
    sandbox.fault('insightsHub.users', { kind: 'oversized', bytes: 64 * 1024 * 1024 });
    const errors = H.collect(ids.errors, 1);
    H.node(ids.request).receive({});
    assert.equal(((await errors)[0]!.error as { code: string }).code, 'HTTP_RESPONSE_TOO_LARGE');
  });

  it('refuses an absolute msg.url on another origin, before sending anything', async () => {
    const { ids } = await loadFlow({}, { url: '' });
    const errors = H.collect(ids.errors, 1);
    H.node(ids.request).receive({ url: 'http://127.0.0.2:9/steal' });
    const error = (await errors)[0]!.error as { code: string; message: string };
    assert.equal(error.code, 'FOREIGN_ORIGIN');
    assert.match(error.message, /only http:\/\/127\.0\.0\.1:\d+ may receive them/);
    assert.equal(H.statuses(ids.request).at(-1)!.fill, 'red');
  });

  it('takes msg.url, msg.method, msg.headers and msg.payload; renders mustache in the node URL', async () => {
    const { ids } = await loadFlow({}, { url: '/__sandbox/echo/{{topic}}', method: 'use', ret: 'obj' });
    const out = H.collect(ids.out, 1);
    H.node(ids.request).receive({ topic: 'devices', method: 'put', headers: { 'x-custom': 'yes', 'content-length': '999' }, payload: { a: 1 } });
    const [msg] = await out;
    const echo = msg!.payload as { method: string; path: string; headers: Record<string, string>; body: string; authenticated: string | null };
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.path, '/__sandbox/echo/devices');
    assert.equal(echo.headers['x-custom'], 'yes');
    assert.equal(echo.headers['content-type'], 'application/json');
    assert.equal(echo.body, '{"a":1}');
    assert.equal(echo.authenticated, 'insights-hub-app');
  });

  it('an unknown msg.method is a clear error', async () => {
    const { ids } = await loadFlow({}, { method: 'use' });
    const errors = H.collect(ids.errors, 1);
    H.node(ids.request).receive({ method: 'FETCH' });
    assert.match(((await errors)[0]!.error as { message: string }).message, /msg.method "FETCH" is not an HTTP method/);
  });

  it('a missing config node or an incomplete one says what to do', async () => {
    const f = flow({ appName: '' });
    f.nodes.push({ id: uid('orphan'), type: 'iiot-token', platform: 'insights-hub-app', insightsHubApp: '', wires: [[f.ids.out]] });
    await H.load(modules, f.nodes, f.credentials);
    const errors = H.collect(f.ids.errors, 2);
    H.node(f.ids.token).receive({});
    H.node(f.nodes.at(-1)!.id).receive({});
    const messages = (await errors).map((m) => m.error as { message: string; code: string });
    assert.deepEqual(messages.map((e) => e.code).sort(), ['CONFIG_INVALID', 'CONFIG_MISSING']);
    assert.ok(messages.some((e) => /lacks the app name: open the config node/.test(e.message)));
    assert.ok(messages.some((e) => /no Insights Hub app config node is selected/.test(e.message)));
  });

  it('keeps the cached token across a redeploy that leaves the config unchanged, drops it when it changes', async () => {
    const f = await loadFlow();
    const first = H.collect(f.ids.out, 1);
    H.node(f.ids.token).receive({});
    const before = ((await first)[0]!.token as { value: string }).value;

    await H.redeploy(f.nodes, 'full', f.credentials);
    const second = H.collect(f.ids.out, 1);
    H.node(f.ids.token).receive({});
    assert.equal(((await second)[0]!.token as { value: string }).value, before, 'full redeploy, same settings: same token');
    assert.equal(sandbox.calls('insightsHub.token'), 1);

    const otherSecret = { [f.ids.config]: { clientId: sandbox.demo.insightsHubApp.clientId, clientSecret: 'another-secret-value' } };
    await H.redeploy(f.nodes, 'full', otherSecret);
    const errors = H.collect(f.ids.errors, 1);
    H.node(f.ids.token).receive({});
    assert.equal(((await errors)[0]!.error as { code: string }).code, 'AUTH_REJECTED', 'a changed secret never gets the old token');
    assert.equal(sandbox.calls('insightsHub.token'), 2);
  });

  it('reads the MDSP_* environment variables when "use environment" is set', async () => {
    const app = sandbox.demo.insightsHubApp;
    const env = {
      MDSP_KEY_STORE_CLIENT_ID: app.clientId,
      MDSP_KEY_STORE_CLIENT_SECRET: app.clientSecret,
      MDSP_OS_VM_APP_NAME: app.appName,
      MDSP_OS_VM_APP_VERSION: app.appVersion,
      MDSP_HOST_TENANT: app.hostTenant,
      MDSP_USER_TENANT: app.userTenant,
    };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      const f = flow({ useEnv: true, appName: '', appVersion: '', hostTenant: '', userTenant: '' });
      await H.load(modules, f.nodes, {});
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({});
      assert.equal((await out)[0]!.statusCode, 200);
      assert.deepEqual(H.leaks(secrets), []);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('declares the client secret as a password credential', async () => {
    const f = await loadFlow();
    void f;
    const definition = (await import('node-red-node-test-helper')).default._redNodes.getCredentialDefinition!('iiot-insights-hub-app');
    assert.deepEqual(definition, { clientId: { type: 'text' }, clientSecret: { type: 'password' } });
  });
});
