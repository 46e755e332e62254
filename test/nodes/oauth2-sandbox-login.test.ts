import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H, type FlowNode, uid } from '../helpers/flow.js';
import { outcomeOf } from '../helpers/outcome.js';
import { CONFIG_NODE_MODULES } from '../helpers/platform-flows.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { consentAtSandbox } from '../helpers/sandbox-consent.js';
import { TEST_BACKOFF } from '../helpers/settings.js';

/**
 * The iiot-oauth2 config node's login (authorization code with PKCE, refresh
 * tokens) against the sandbox's OAuth 2.0 server, as the demo runs it: the
 * admin routes start and finish the login, the sandbox's consent page is
 * answered in the browser's place, the refresh token the sandbox rotates at
 * every use is the one stored, and the sandbox's refusals (a wrong verifier,
 * a replayed code, "Deny") reach the user as clear errors.
 */
const REDIRECT = 'http://127.0.0.1:1880/iiot-auth/oauth2/callback';
const modules = [...CONFIG_NODE_MODULES, tokenNode, requestNode];

describe('OAuth 2.0 login against the sandbox (authorization code, refresh tokens)', function () {
  this.timeout(30_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-oauth2-sandbox-login-'));
  const env = withSandboxAndRuntime({ settings: { iiotAuth: { ...TEST_BACKOFF, oauth2StateDir: dir } } });
  let sandbox: Sandbox;
  /** Every code and refresh token seen: none may appear in what the runtime emitted. */
  const seen: string[] = [];
  before(() => {
    sandbox = env.sandbox;
  });
  afterEach(() => {
    for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function flow() {
    const ids = { config: uid('o2'), token: uid('tok'), request: uid('req'), out: uid('out'), errors: uid('err') };
    const nodes: FlowNode[] = [
      {
        id: ids.config,
        type: 'iiot-oauth2',
        name: 'sandbox login',
        issuer: `${sandbox.url}/oauth2`,
        apiUrl: `${sandbox.url}/oauth2/api`,
        grant: 'authorization_code',
        clientAuth: 'body',
        scope: 'openid read',
      },
      { id: ids.token, type: 'iiot-token', platform: 'oauth2', oauth2: ids.config, wires: [[ids.out]] },
      { id: ids.request, type: 'iiot-request', platform: 'oauth2', oauth2: ids.config, method: 'GET', url: '/whoami', ret: 'obj', wires: [[ids.out]] },
      { id: ids.out, type: 'helper' },
      { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
      { id: ids.errors, type: 'helper' },
    ];
    const { clientId, clientSecret } = sandbox.demo.oauth2;
    return { ids, nodes, credentials: { [ids.config]: { clientId, clientSecret } } };
  }

  /** "Log in" in the dialog: the sandbox's authorization URL for a new login. */
  async function startLogin(configId: string): Promise<string> {
    const started = await H.request().post(`/iiot-auth/oauth2/${configId}/login`).set('content-type', 'application/json').send({ callbackUrl: REDIRECT });
    assert.equal(started.status, 200, JSON.stringify(started.body));
    return started.body.authorizationUrl as string;
  }
  /** The browser back at Node-RED's callback: its page. */
  async function callback(url: string): Promise<{ status: number; text: string }> {
    const code = new URL(url).searchParams.get('code');
    if (code) seen.push(code);
    const answer = await H.request().get(url.slice(new URL(url).origin.length));
    return { status: answer.status, text: answer.text };
  }
  const loginStatus = async (configId: string) => (await H.request().get(`/iiot-auth/oauth2/${configId}/login`)).body as Record<string, unknown>;
  /** The stored refresh token (the store is not sealed here: no encryption key is set). */
  function storedRefreshToken(): string | undefined {
    const files = fs.readdirSync(dir).filter((name) => name.endsWith('.json'));
    if (files.length === 0) return undefined;
    const token = (JSON.parse(fs.readFileSync(path.join(dir, files[0]!), 'utf8')) as { refreshToken?: string }).refreshToken;
    if (token) seen.push(token);
    return token;
  }
  async function refreshDirectly(refreshToken: string): Promise<{ status: number; error?: string | undefined }> {
    const { clientId, clientSecret } = sandbox.demo.oauth2;
    const res = await fetch(`${sandbox.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, client_secret: clientSecret }).toString(),
    });
    return { status: res.status, error: ((await res.json()) as { error?: string }).error };
  }
  const renew = (configId: string) => H.request().post(`/iiot-auth/health/${configId}/renew`).set('content-type', 'application/json').send({});
  const secrets = () => [sandbox.demo.oauth2.clientSecret, ...seen];

  it('logs in through the consent page; the API sees the demo user; every refresh rotates the stored refresh token, and the old one is refused', async () => {
    const f = flow();
    await H.load(modules, f.nodes, f.credentials);
    const before = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(before.kind, 'error');
    assert.equal(before.error?.code, 'AUTH_REJECTED');
    assert.match(before.error?.message ?? '', /log in again in the config dialog/);

    const page = await callback(await consentAtSandbox(await startLogin(f.ids.config)));
    assert.equal(page.status, 200, page.text);
    assert.match(page.text, /Logged in as Demo Operator/);
    const status = await loginStatus(f.ids.config);
    assert.equal(status.loggedIn, true);
    assert.equal(status.sub, 'demo-operator');
    assert.equal(status.scope, 'openid read');
    const first = storedRefreshToken()!;
    assert.ok(first);

    const api = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(api.kind, 'output', JSON.stringify(api.error));
    assert.equal(api.msg.statusCode, 200);
    assert.deepEqual(api.msg.payload, {
      client_id: sandbox.demo.oauth2.clientId,
      client_auth: 'body',
      scope: 'openid read',
      audience: sandbox.demo.oauth2.audience,
      params: {},
      user: 'demo-operator',
    });
    const second = storedRefreshToken()!;
    assert.ok(second && second !== first, 'the refresh rotated the stored refresh token');

    // "Renew token now": one more refresh with the stored token, rotated again.
    const calls = sandbox.calls('oauth2.token');
    assert.equal((await renew(f.ids.config)).status, 200);
    assert.equal(sandbox.calls('oauth2.token'), calls + 1);
    const third = storedRefreshToken()!;
    assert.ok(third !== second && third !== first);
    const token = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    assert.equal(token.kind, 'output', JSON.stringify(token.error));
    assert.equal(sandbox.calls('oauth2.token'), calls + 1, 'the renewed token is used, no refresh more');

    // The rotated-away tokens are spent at the sandbox; the stored one is what the next refresh sends.
    assert.deepEqual(await refreshDirectly(first), { status: 400, error: 'invalid_grant' });
    assert.deepEqual(await refreshDirectly(second), { status: 400, error: 'invalid_grant' });
    assert.equal(storedRefreshToken(), third);
    assert.deepEqual(H.leaks(secrets()), []);
  });

  it('a code sent back with another login’s verifier is refused by the sandbox (PKCE): the callback page says so, nothing is stored', async () => {
    const f = flow();
    await H.load(modules, f.nodes, f.credentials);
    const mine = new URL(await startLogin(f.ids.config));
    const other = await startLogin(f.ids.config);
    // The code of the other login (its challenge), delivered with this login's state (this login's verifier).
    const back = new URL(await consentAtSandbox(other));
    back.searchParams.set('state', mine.searchParams.get('state')!);
    const page = await callback(back.href);
    assert.equal(page.status, 400);
    assert.match(page.text, /GRANT_INVALID|refused the grant/);
    assert.match(page.text, /code_verifier does not match the code_challenge \(PKCE\)/);
    assert.equal(storedRefreshToken(), undefined);
    assert.equal((await loginStatus(f.ids.config)).loggedIn, false);
    assert.deepEqual(H.leaks(secrets()), []);
  });

  it('a replayed code is refused, and the sandbox revokes the login it gave: the next token asks to log in again', async () => {
    const f = flow();
    await H.load(modules, f.nodes, f.credentials);
    const url = await consentAtSandbox(await startLogin(f.ids.config));
    assert.equal((await callback(url)).status, 200);
    // The code used a second time, as a thief would, straight at the token endpoint.
    const { clientId, clientSecret } = sandbox.demo.oauth2;
    const replay = await fetch(`${sandbox.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: new URL(url).searchParams.get('code')!,
        redirect_uri: REDIRECT,
        client_id: clientId,
        client_secret: clientSecret,
      }).toString(),
    });
    assert.equal(replay.status, 400);
    assert.equal(((await replay.json()) as { error: string }).error, 'invalid_grant');

    const after = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    assert.equal(after.kind, 'error');
    assert.equal(after.error?.code, 'AUTH_REJECTED');
    assert.match(after.error?.message ?? '', /no longer accepts the stored refresh token \(invalid_grant/);
    assert.equal((await loginStatus(f.ids.config)).loggedIn, false, 'the refused login is cleared');
    // The replayed callback itself is refused by the node (its state is spent).
    const again = await callback(url);
    assert.equal(again.status, 400);
    assert.match(again.text, /finished already/);
    assert.deepEqual(H.leaks(secrets()), []);
  });

  it('"Deny" on the consent page: the callback page says the provider refused (access_denied), nothing is stored', async () => {
    const f = flow();
    await H.load(modules, f.nodes, f.credentials);
    const page = await callback(await consentAtSandbox(await startLogin(f.ids.config), 'deny'));
    assert.equal(page.status, 400);
    assert.match(page.text, /The provider refused the login: access_denied \(the user denied the request\)/);
    assert.equal(storedRefreshToken(), undefined);
    assert.equal((await loginStatus(f.ids.config)).loggedIn, false);
  });

  it('"Log out": the sandbox revokes the refresh token (RFC 7009), the login is cleared, the next message asks to log in', async () => {
    const f = flow();
    await H.load(modules, f.nodes, f.credentials);
    assert.equal((await callback(await consentAtSandbox(await startLogin(f.ids.config)))).status, 200);
    const working = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(working.kind, 'output', JSON.stringify(working.error));
    const refreshToken = storedRefreshToken()!;
    const answer = await H.request().post(`/iiot-auth/oauth2/${f.ids.config}/logout`).set('content-type', 'application/json').send({});
    assert.deepEqual(answer.body, { loggedIn: false, revoked: true });
    assert.equal(sandbox.calls('oauth2.revoke'), 1);
    assert.equal((await refreshDirectly(refreshToken)).error, 'invalid_grant', 'revoked at the sandbox');
    assert.equal((await loginStatus(f.ids.config)).loggedIn, false);
    const after = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(after.error?.code, 'AUTH_REJECTED');
    assert.match(after.error?.message ?? '', /not logged in/);
    assert.deepEqual(H.leaks(secrets()), []);
  });
});
