import assert from 'node:assert/strict';
import { startSandbox, DEFAULT_LIFETIMES, type Sandbox } from '../../src/sandbox/index.js';
import { ciscoEiToken, insightsHubToken, insightsHubTokenRequest, jwtClaims, jwtHeader, postJson, waitUntilExpired } from './helpers.js';

describe('sandbox: Insights Hub app credentials', () => {
  let sandbox: Sandbox;
  let tokenUrl: string;
  let usersUrl: string;

  before(async () => {
    sandbox = await startSandbox();
    tokenUrl = `${sandbox.url}/api/technicaltokenmanager/v3/oauth/token`;
    usersUrl = `${sandbox.url}/api/identitymanagement/v3/Users`;
  });
  after(() => sandbox.stop());
  afterEach(() => {
    Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES);
    sandbox.clearFaults();
  });

  function spaceAuthKey(id: string, secret: string, scheme = 'Basic'): string {
    return `${scheme} ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  }

  function appBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const { appName, appVersion, hostTenant, userTenant } = sandbox.demo.insightsHubApp;
    return { appName, appVersion, hostTenant, userTenant, ...overrides };
  }

  it('issues an RS256 token for the registered app, with exp - iat = the lifetime', async () => {
    const response = await insightsHubTokenRequest(sandbox);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type')!, /^application\/json/);
    const body = (await response.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'jti', 'scope', 'timestamp', 'token_type']);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 1800);
    const token = body.access_token as string;
    assert.equal(jwtHeader(token).alg, 'RS256');
    const claims = jwtClaims(token);
    assert.equal((claims.exp as number) - (claims.iat as number), 1800);
    assert.equal(claims.jti, body.jti);
    assert.equal(claims.client_id, sandbox.demo.insightsHubApp.clientId);
    assert.equal(claims.ten, sandbox.demo.insightsHubApp.userTenant);
  });

  it('accepts the Bearer scheme in X-SPACE-AUTH-KEY and a body without grant_type', async () => {
    const { clientId, clientSecret } = sandbox.demo.insightsHubApp;
    const response = await postJson(tokenUrl, appBody(), { 'x-space-auth-key': spaceAuthKey(clientId, clientSecret, 'Bearer') });
    assert.equal(response.status, 200);
  });

  it('answers 401 with a JSON error body for a wrong secret, a missing key, or another app', async () => {
    const { clientId, clientSecret } = sandbox.demo.insightsHubApp;
    const cases: [Record<string, unknown>, Record<string, string>][] = [
      [appBody(), { 'x-space-auth-key': spaceAuthKey(clientId, 'not-the-secret') }],
      [appBody(), {}],
      [appBody(), { 'x-space-auth-key': 'Basic not-base64-of-a-pair' }],
      [appBody({ appName: 'another-app' }), { 'x-space-auth-key': spaceAuthKey(clientId, clientSecret) }],
    ];
    for (const [body, headers] of cases) {
      const response = await postJson(tokenUrl, body, headers);
      assert.equal(response.status, 401, JSON.stringify(headers));
      const error = (await response.json()) as { errors: Array<{ message: string }> };
      assert.ok(error.errors[0].message.length > 0);
      assert.ok(!JSON.stringify(error).includes(clientSecret));
    }
  });

  it('answers 400 to a malformed request', async () => {
    const { clientId, clientSecret } = sandbox.demo.insightsHubApp;
    const key = { 'x-space-auth-key': spaceAuthKey(clientId, clientSecret) };
    const notJson = await fetch(tokenUrl, { method: 'POST', headers: { ...key, 'content-type': 'text/plain' }, body: JSON.stringify(appBody()) });
    assert.equal(notJson.status, 400);
    const brokenJson = await fetch(tokenUrl, { method: 'POST', headers: { ...key, 'content-type': 'application/json' }, body: '{"appName":' });
    assert.equal(brokenJson.status, 400);
    assert.equal((await postJson(tokenUrl, appBody({ userTenant: undefined }), key)).status, 400);
    assert.equal((await postJson(tokenUrl, appBody({ grant_type: 'password' }), key)).status, 400);
    assert.equal((await fetch(tokenUrl)).status, 405);
  });

  it('serves the users list to a valid token, under both paths', async () => {
    const token = await insightsHubToken(sandbox);
    for (const url of [usersUrl, `${sandbox.url}/api/im/v3/Users`]) {
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200);
      const list = (await response.json()) as { resources: unknown[]; totalResults: number };
      assert.equal(list.resources.length, list.totalResults);
    }
  });

  it('refuses a missing, tampered or foreign token with 401', async () => {
    const token = await insightsHubToken(sandbox);
    const [head, payload, signature] = token.split('.');
    const claims = { ...jwtClaims(token), client_id: 'someone-else' };
    const tampered = [head, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
    for (const authorization of [undefined, 'Bearer garbage', `Bearer ${tampered}`, `Bearer ${await ciscoEiToken(sandbox)}`, `Basic ${payload}`]) {
      const response = await fetch(usersUrl, { headers: authorization ? { authorization } : {} });
      assert.equal(response.status, 401, authorization);
      assert.match(response.headers.get('www-authenticate')!, /^Bearer/);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_token');
    }
  });

  it('lets a token expire after the configured lifetime', async () => {
    sandbox.lifetimes.insightsHubAppToken = 1;
    const response = await insightsHubTokenRequest(sandbox);
    const { access_token: token, expires_in } = (await response.json()) as { access_token: string; expires_in: number };
    assert.equal(expires_in, 1);
    assert.equal((await fetch(usersUrl, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    await waitUntilExpired(token);
    assert.equal((await fetch(usersUrl, { headers: { authorization: `Bearer ${token}` } })).status, 401);
  });

  it('revokeTokens() makes issued tokens fail; new ones work', async () => {
    const old = await insightsHubToken(sandbox);
    sandbox.revokeTokens();
    assert.equal((await fetch(usersUrl, { headers: { authorization: `Bearer ${old}` } })).status, 401);
    const fresh = await insightsHubToken(sandbox);
    assert.notEqual(jwtHeader(fresh).kid, jwtHeader(old).kid);
    assert.equal((await fetch(usersUrl, { headers: { authorization: `Bearer ${fresh}` } })).status, 200);
  });
});
