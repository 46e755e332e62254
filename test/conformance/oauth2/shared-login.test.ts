import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NodeRedProcess } from '../../helpers/node-red-process.js';
import { RedisServer } from '../../helpers/redis-server.js';
import { TEST_BACKOFF } from '../../helpers/settings.js';
import { waitFor } from '../../helpers/wait.js';
import { type AuthorizationServer, startAuthorizationServer } from './authorization-server.js';
import { loginAtProvider } from './login-driver.js';

/**
 * Two real Node-RED processes share one login on a real Redis: the same
 * iiot-oauth2 config node (same id) in both flows, logged in once through
 * one runtime's admin routes. oidc-provider rotates refresh tokens with
 * reuse detection and issues access tokens for two seconds, so both
 * processes refresh again and again while messages flow in both: every
 * message succeeds, no refresh token reaches the provider twice, no grant
 * is revoked, and neither process prints a secret. A restarted process
 * (a new user directory, the same Redis) needs no new login.
 * login.test.ts has the same sharing in one process (its second runtime a
 * second login client), with both refreshing at the same instant.
 */
const CONFIG_ID = 'o2shared0001';
const SCOPE = 'openid offline_access profile';
const KEY = randomBytes(32).toString('base64');
const ACCESS_TOKEN_TTL_S = 2;
const REFRESHES = 20;

describe('OAuth 2.0 conformance (oidc-provider): two Node-RED processes sharing one login on Redis', function () {
  this.timeout(90_000);
  let redis: RedisServer | undefined;
  let as: AuthorizationServer | undefined;
  const running: NodeRedProcess[] = [];

  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const red of running) await red.stop();
    await as?.stop();
    await redis?.stop();
  });

  const start = async (): Promise<NodeRedProcess> => {
    const red = await NodeRedProcess.start({
      iiotAuth: { ...TEST_BACKOFF, agentStore: { redis: { url: redis!.url, keyPrefix: 'shared-login:' }, encryption: { key: KEY } } },
      // Everything the runtime logs, for the search for secrets.
      logging: { console: { level: 'trace' } },
    });
    running.push(red);
    return red;
  };

  /** GET /items runs an authenticated request node; the answer is {ok, items} or {ok: false, code, message}. GET /up answers at once. */
  const flows = (server: AuthorizationServer): Record<string, unknown>[] => [
    { id: 'tab1', type: 'tab', label: 'shared login' },
    {
      id: CONFIG_ID,
      type: 'iiot-oauth2',
      issuer: server.issuer,
      apiUrl: server.apiUrl,
      grant: 'authorization_code',
      clientAuth: 'basic',
      scope: SCOPE,
      credentials: { clientId: server.clients.code.clientId, clientSecret: server.clients.code.clientSecret },
    },
    { id: 'in1', type: 'http in', z: 'tab1', url: '/items', method: 'get', wires: [['req1']] },
    { id: 'req1', type: 'iiot-request', z: 'tab1', platform: 'oauth2', oauth2: CONFIG_ID, method: 'GET', url: '/items', ret: 'obj', wires: [['ok1']] },
    {
      id: 'ok1',
      type: 'change',
      z: 'tab1',
      // The API's headers (its content-length) are not the answer's.
      rules: [
        { t: 'set', p: 'payload', pt: 'msg', to: '{"ok": true, "status": statusCode, "items": payload.items}', tot: 'jsonata' },
        { t: 'delete', p: 'headers', pt: 'msg' },
      ],
      wires: [['res1']],
    },
    { id: 'catch1', type: 'catch', z: 'tab1', scope: ['req1'], uncaught: false, wires: [['err1']] },
    {
      id: 'err1',
      type: 'change',
      z: 'tab1',
      rules: [
        { t: 'set', p: 'payload', pt: 'msg', to: '{"ok": false, "code": error.code, "message": error.message}', tot: 'jsonata' },
        { t: 'set', p: 'statusCode', pt: 'msg', to: '200', tot: 'num' },
      ],
      wires: [['res1']],
    },
    { id: 'res1', type: 'http response', z: 'tab1', statusCode: '', wires: [] },
    { id: 'in2', type: 'http in', z: 'tab1', url: '/up', method: 'get', wires: [['res2']] },
    { id: 'res2', type: 'http response', z: 'tab1', statusCode: '', wires: [] },
  ];

  /** Deploys the flow and waits until it runs (a deploy answers before the flows have started). */
  const deploy = async (red: NodeRedProcess, server: AuthorizationServer) => {
    await red.deploy(flows(server));
    await waitFor(async () => (await fetch(`${red.base}/up`)).ok, { timeoutMs: 10_000, intervalMs: 50, what: () => `the flow to start:\n${red.output}` });
  };

  interface Answer {
    ok: boolean;
    status?: number;
    items?: number[];
    code?: string;
    message?: string;
  }
  const items = async (red: NodeRedProcess): Promise<Answer> => (await (await fetch(`${red.base}/items`)).json()) as Answer;

  it('both refresh many times while messages flow in both: every message succeeds, no refresh token sent twice, no grant revoked, no secret printed; a restart needs no login', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    as = await startAuthorizationServer({
      loginRedirectUri: `${a!.base}/iiot-auth/oauth2/callback`,
      accessTokenTtl: ACCESS_TOKEN_TTL_S,
      // A slow token endpoint: a refresh takes long enough that the other process wants one meanwhile, and must wait for it.
      tokenDelayMs: 250,
    });
    const server = as;
    const client = server.clients.code.clientId;
    await Promise.all([deploy(a!, server), deploy(b!, server)]);

    // Not logged in yet: both say so.
    for (const red of [a!, b!]) {
      const answer = await items(red);
      assert.equal(answer.code, 'AUTH_REJECTED', JSON.stringify(answer));
      assert.match(answer.message ?? '', /log in again in the config dialog/);
    }

    // One login, through A's admin routes (no adminAuth here; test/security/oauth2-login-route.test.ts has it with).
    const started = await fetch(`${a!.base}/iiot-auth/oauth2/${CONFIG_ID}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(started.status, 200, await started.clone().text());
    const { authorizationUrl, redirectUri } = (await started.json()) as { authorizationUrl: string; redirectUri: string };
    const landed = await fetch(await loginAtProvider(authorizationUrl, redirectUri));
    assert.equal(landed.status, 200, await landed.clone().text());
    assert.match(await landed.text(), /Logged in as User alice/);
    const loggedIn = (await (await fetch(`${b!.base}/iiot-auth/oauth2/${CONFIG_ID}/login`)).json()) as { loggedIn: boolean };
    assert.equal(loggedIn.loggedIn, true, 'B sees the login made in A');

    // Messages in both, two at a time in each, until the provider granted REFRESHES refreshes. An access token lives
    // two seconds, so a process whose messages keep succeeding all along must have refreshed again and again itself.
    const served = { a: 0, b: 0 };
    const failed = (answer: Answer) => !answer.ok || answer.status !== 200 || answer.items?.length !== 3;
    await waitFor(
      async () => {
        const round = await Promise.all([items(a!), items(a!), items(b!), items(b!)]);
        // A failed message ends the wait at once, with what it said.
        round.forEach((answer, i) => {
          if (failed(answer)) throw new Error(`a message in ${i < 2 ? 'A' : 'B'} failed: ${JSON.stringify(answer)}`);
        });
        served.a += 2;
        served.b += 2;
        return server.grantedOf(client, 'refresh_token') >= REFRESHES;
      },
      { timeoutMs: 30_000, intervalMs: 10, what: () => `${REFRESHES} refreshes (${server.grantedOf(client, 'refresh_token')} so far)` },
    );
    assert.ok(served.a > REFRESHES && served.b > REFRESHES);
    assert.equal(server.revokedGrants, 0, 'oidc-provider revoked no grant');
    assert.equal(server.refused(client), 0, 'the provider refused no token request');
    const reused = [...server.refreshTokenUses].filter(([, uses]) => uses > 1);
    assert.deepEqual(reused.length, 0, `${reused.length} refresh tokens were sent more than once`);
    assert.ok(server.refreshTokenUses.size >= REFRESHES, 'each refresh sent a token the provider counted');
    assert.equal(server.grantedOf(client, 'authorization_code'), 1);

    // A restart of A (a new process and user directory, the same Redis): the next message refreshes, no new login.
    await a!.stop();
    running.splice(running.indexOf(a!), 1);
    const again = await start();
    await deploy(again, server);
    const refreshes = server.grantedOf(client, 'refresh_token');
    const restarted = await items(again);
    assert.equal(restarted.ok, true, JSON.stringify(restarted));
    assert.ok(server.grantedOf(client, 'refresh_token') > refreshes, 'the restarted process refreshed with the stored token');
    assert.equal(server.grantedOf(client, 'authorization_code'), 1, 'no new login');
    assert.equal(server.revokedGrants, 0);

    // No secret in what either process printed (the first A's output was kept before it stopped).
    const secrets = [server.clients.code.clientSecret!, ...server.refreshTokens, ...server.refreshedAccessTokens];
    for (const red of [a!, b!, again]) {
      const leaked = secrets.filter((secret) => red.output.includes(secret));
      assert.deepEqual(leaked.length, 0, `${leaked.length} secrets in the output of ${red.base}`);
    }
  });
});
