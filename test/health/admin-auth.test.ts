import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { type NodeRedProcess, startNodeRed } from '../editor/node-red.js';
import { adminUsers } from '../helpers/admin-auth.js';
import type { HealthEntry } from '../../src/health/model.js';

/**
 * The health routes behind Node-RED's adminAuth (a real Node-RED process
 * with this package installed): nothing without a login; a user who may
 * only read sees the entries and the metrics but may not act; a user with
 * write permission may renew. No secret in any answer or in the log.
 */
describe('health routes with adminAuth (a real Node-RED)', function () {
  this.timeout(90_000);
  let red: NodeRedProcess | undefined;
  let sandbox: Sandbox;
  const ADMIN_PASSWORD = 'admin-password-for-health';
  const VIEWER_PASSWORD = 'viewer-password-for-health';
  const users = adminUsers(ADMIN_PASSWORD, VIEWER_PASSWORD);
  const CONFIG_ID = 'health-o2-config';

  before(async () => {
    sandbox = await startSandbox();
    red = await startNodeRed({
      adminAuth: users.settings,
    });
  });
  after(async () => {
    await red?.stop();
    await sandbox?.stop();
  });

  const login = (who: 'admin' | 'viewer') => users.token(red!.base, who);
  const auth = (token: string | undefined): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
  const get = (route: string, token?: string) => fetch(`${red!.base}${route}`, { headers: auth(token) });
  const post = (route: string, token?: string) =>
    fetch(`${red!.base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(token) }, body: '{}' });

  it('no login: 401 everywhere; read permission: entries and metrics, no actions (401); write permission: renew', async () => {
    const admin = await login('admin');
    const demo = sandbox.demo.oauth2;
    const deployed = await fetch(`${red!.base}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', ...auth(admin) },
      body: JSON.stringify([
        {
          id: CONFIG_ID,
          type: 'iiot-oauth2',
          name: 'line "7"',
          tokenUrl: `${sandbox.url}/oauth2/token`,
          apiUrl: `${sandbox.url}/oauth2/api`,
          clientAuth: 'body',
          scope: 'read',
          credentials: { clientId: demo.clientId, clientSecret: demo.clientSecret },
        },
      ]),
    });
    assert.ok(deployed.ok, await deployed.text());

    for (const route of ['/iiot-auth/health', '/iiot-auth/metrics']) assert.equal((await get(route)).status, 401, route);
    assert.equal((await post(`/iiot-auth/health/${CONFIG_ID}/renew`)).status, 401);

    const viewer = await login('viewer');
    const health = await get('/iiot-auth/health', viewer);
    assert.equal(health.status, 200);
    const body = (await health.json()) as { generatedAt: string; credentials: HealthEntry[] };
    assert.ok(!Number.isNaN(Date.parse(body.generatedAt)));
    const entry = body.credentials.find((e) => e.id === CONFIG_ID);
    assert.equal(entry?.state, 'ok');
    assert.equal(entry?.name, 'line "7"');
    const metrics = await get('/iiot-auth/metrics', viewer);
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.ok(text.includes(`config="${CONFIG_ID}",name="line \\"7\\""`), text);
    assert.equal((await post(`/iiot-auth/health/${CONFIG_ID}/renew`, viewer)).status, 401);
    assert.equal((await post(`/iiot-auth/health/${CONFIG_ID}/rotate`, viewer)).status, 401);
    assert.equal(sandbox.calls('oauth2.token'), 0, 'nothing was requested for them');

    const renewed = await post(`/iiot-auth/health/${CONFIG_ID}/renew`, admin);
    assert.equal(renewed.status, 200);
    const after = (await renewed.json()) as HealthEntry;
    assert.equal(after.state, 'ok');
    assert.ok(after.tokenExpiresAt);
    assert.equal(sandbox.calls('oauth2.token'), 1);
    const unknown = await post('/iiot-auth/health/nothing-here/renew', admin);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'NOT_FOUND');

    for (const secret of [demo.clientSecret]) {
      assert.ok(!JSON.stringify([body, text, after]).includes(secret), 'no secret in the answers');
      assert.ok(!red!.output().includes(secret), 'nor in the log');
    }
  });
});
