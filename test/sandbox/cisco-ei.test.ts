import assert from 'node:assert/strict';
import { startSandbox, DEFAULT_LIFETIMES, type Sandbox } from '../../src/sandbox/index.js';
import { ciscoEiToken, insightsHubToken, jwtClaims, jwtHeader, postJson } from './helpers.js';

describe('sandbox: Cisco EI', () => {
  let sandbox: Sandbox;
  let api: string;

  before(async () => {
    sandbox = await startSandbox();
    api = `${sandbox.url}/nbapi/ei/v1`;
  });
  after(() => sandbox.stop());
  afterEach(() => Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES));

  async function call(path: string, token: string, tenant: string | undefined, init: RequestInit = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    if (tenant !== undefined) headers['x-tenant-id'] = tenant;
    return fetch(`${api}${path}`, { ...init, headers });
  }

  it('issues an access and a refresh token for the API user', async () => {
    const { username, password } = sandbox.demo.ciscoEi;
    const response = await postJson(`${sandbox.url}/iam/auth/token`, { username, password });
    assert.equal(response.status, 200);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body.token_type, 'bearer');
    assert.equal(body.expires_in, 300);
    assert.equal(body.refresh_expires_in, 1800);
    assert.equal(jwtHeader(body.access_token as string).alg, 'RS256');
    const claims = jwtClaims(body.access_token as string);
    assert.equal((claims.exp as number) - (claims.iat as number), 300);
    assert.equal(typeof body.refresh_token, 'string');
  });

  it('takes the lifetimes in force when the token is issued', async () => {
    sandbox.lifetimes.ciscoEiAccessToken = 60;
    sandbox.lifetimes.ciscoEiRefreshToken = 120;
    const { username, password } = sandbox.demo.ciscoEi;
    const body = (await (await postJson(`${sandbox.url}/iam/auth/token`, { username, password })).json()) as Record<string, number>;
    assert.equal(body.expires_in, 60);
    assert.equal(body.refresh_expires_in, 120);
  });

  it('answers 401 to wrong credentials and 400 to a malformed request', async () => {
    const { username } = sandbox.demo.ciscoEi;
    const wrong = await postJson(`${sandbox.url}/iam/auth/token`, { username, password: 'wrong-password' });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: string }).error, 'invalid_grant');
    assert.equal((await postJson(`${sandbox.url}/iam/auth/token`, { username })).status, 400);
    const form = await fetch(`${sandbox.url}/iam/auth/token`, { method: 'POST', body: new URLSearchParams({ username, password: 'x' }) });
    assert.equal(form.status, 400);
  });

  it('lists the two tenants of the demo user at /iam/users/me', async () => {
    const token = await ciscoEiToken(sandbox);
    const response = await fetch(`${sandbox.url}/iam/users/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    const { roles } = (await response.json()) as { roles: Record<string, string>[] };
    assert.deepEqual(
      roles.map((role) => ({ id: role.tenant_id, name: role.tenant_name })),
      sandbox.demo.ciscoEi.tenants,
    );
    assert.ok(roles.every((role) => role.role_name && role.role_id));
    assert.equal(sandbox.demo.ciscoEi.tenantId, roles[0].tenant_id);
    assert.equal((await fetch(`${sandbox.url}/iam/users/me`)).status, 401);
  });

  it('needs a valid bearer (401) and a tenant of the user (403) on the EI API', async () => {
    const token = await ciscoEiToken(sandbox);
    const { tenantId } = sandbox.demo.ciscoEi;
    assert.equal((await call('/agents', token, tenantId)).status, 200);
    const missingTenant = await call('/agents', token, undefined);
    assert.equal(missingTenant.status, 403);
    assert.equal(((await missingTenant.json()) as { message: string }).message, 'Unauthorized');
    assert.equal((await call('/agents', token, '00000000-0000-4000-8000-000000000000')).status, 403);
    assert.equal((await call('/agents', 'garbage', tenantId)).status, 401);
    assert.equal((await call('/agents', await insightsHubToken(sandbox), tenantId)).status, 401, 'another platform’s token');
    const { refresh_token: refreshToken } = (await (
      await postJson(`${sandbox.url}/iam/auth/token`, { username: sandbox.demo.ciscoEi.username, password: sandbox.demo.ciscoEi.password })
    ).json()) as { refresh_token: string };
    assert.equal((await call('/agents', refreshToken, tenantId)).status, 401, 'a refresh token is no access token');
  });

  it('creates, reads, replaces and deletes asset types, per tenant', async () => {
    const token = await ciscoEiToken(sandbox);
    const [first, second] = sandbox.demo.ciscoEi.tenants.map((tenant) => tenant.id);
    const created = await call('/assetTypes', token, first, { method: 'POST', body: JSON.stringify({ name: 'Pump', properties: [] }) });
    assert.equal(created.status, 201);
    const { id } = (await created.json()) as { id: string };
    assert.equal(((await (await call(`/assetTypes/${id}`, token, first)).json()) as { name: string }).name, 'Pump');
    assert.deepEqual(await (await call('/assetTypes', token, second)).json(), [], 'invisible in the other tenant');
    assert.equal((await call(`/assetTypes/${id}`, token, second)).status, 404);

    const replaced = await call(`/assetTypes/${id}`, token, first, { method: 'PUT', body: JSON.stringify({ name: 'Big pump' }) });
    assert.deepEqual(await replaced.json(), { id, name: 'Big pump' });
    assert.equal((await call('/assetTypes', token, first, { method: 'POST', body: '{}' })).status, 400);
    assert.equal((await call(`/assetTypes/${id}`, token, first, { method: 'DELETE' })).status, 204);
    assert.equal((await call(`/assetTypes/${id}`, token, first)).status, 404);
    assert.equal(sandbox.calls('ciscoEi.assetTypes') >= 8, true);
  });

  it('revokeTokens() makes issued tokens fail', async () => {
    const token = await ciscoEiToken(sandbox);
    sandbox.revokeTokens();
    assert.equal((await call('/agents', token, sandbox.demo.ciscoEi.tenantId)).status, 401);
    assert.equal((await call('/agents', await ciscoEiToken(sandbox), sandbox.demo.ciscoEi.tenantId)).status, 200);
  });
});
