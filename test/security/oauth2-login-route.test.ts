import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type AuthorizationServer, startAuthorizationServer } from '../conformance/oauth2/authorization-server.js';
import { loginAtProvider } from '../conformance/oauth2/login-driver.js';
import { type NodeRedProcess, startNodeRed } from '../editor/node-red.js';
import { adminUsers } from '../helpers/admin-auth.js';
import { filesUnder } from '../helpers/secret-search.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The OAuth 2.0 login's admin routes in a real Node-RED with adminAuth: the
 * start needs write permission (none and read-only: 401, Node-RED's answer);
 * the status read permission; the callback, which the browser reaches from
 * the provider without the editor's token, is accepted only with a state that
 * a write-permitted start made, once. No token in any answer or file in plain
 * text but the sealed store's.
 */
describe('security: the OAuth 2.0 login routes with adminAuth (a real Node-RED)', function () {
  this.timeout(90_000);
  let red: NodeRedProcess | undefined;
  let as: AuthorizationServer | undefined;
  const ADMIN_PASSWORD = 'admin-password-for-the-login';
  const VIEWER_PASSWORD = 'viewer-password-for-the-login';
  const users = adminUsers(ADMIN_PASSWORD, VIEWER_PASSWORD);
  const configId = 'o2login0001';
  const KEY = randomBytes(32).toString('base64');

  before(async () => {
    red = await startNodeRed({
      adminAuth: users.settings,
      iiotAuth: { agentStore: { encryption: { key: KEY } } },
    });
    as = await startAuthorizationServer({ loginRedirectUri: `${red.base}/iiot-auth/oauth2/callback` });
    const deployed = await fetch(`${red.base}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', authorization: `Bearer ${await token('admin')}` },
      body: JSON.stringify([
        {
          id: configId,
          type: 'iiot-oauth2',
          issuer: as.issuer,
          apiUrl: as.apiUrl,
          grant: 'authorization_code',
          clientAuth: 'basic',
          scope: 'openid offline_access profile',
          credentials: { clientId: as.clients.code.clientId, clientSecret: as.clients.code.clientSecret },
        },
      ]),
    });
    assert.ok(deployed.ok, await deployed.text());
  });
  after(async () => {
    await red?.stop();
    await as?.stop();
  });

  const token = (who: 'admin' | 'viewer') => users.token(red!.base, who);
  const start = (bearer: string | undefined) =>
    fetch(`${red!.base}/iiot-auth/oauth2/${configId}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      body: '{}',
    });
  const status = (bearer: string | undefined) =>
    fetch(`${red!.base}/iiot-auth/oauth2/${configId}/login`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });

  it('start: 401 without a login and for a reader; the callback works without a token only with the state a writer started, once', async () => {
    assert.equal((await start(undefined)).status, 401);
    const viewer = await token('viewer');
    assert.equal((await start(viewer)).status, 401);
    assert.equal((await status(undefined)).status, 401);
    assert.deepEqual(await (await status(viewer)).json(), { loggedIn: false, grant: 'authorization_code' });

    // A forged state: refused, and no login kept.
    const forged = await fetch(`${red!.base}/iiot-auth/oauth2/callback?code=x&state=${randomBytes(32).toString('base64url')}`);
    assert.equal(forged.status, 400);

    // The writer's start: the redirect URI is the editor's own callback route, computed from the request.
    const started = await start(await token('admin'));
    assert.equal(started.status, 200);
    const { authorizationUrl, redirectUri } = (await started.json()) as { authorizationUrl: string; redirectUri: string };
    assert.equal(redirectUri, `${red!.base}/iiot-auth/oauth2/callback`);
    const callback = await loginAtProvider(authorizationUrl, redirectUri);
    const landed = await fetch(callback);
    assert.equal(landed.status, 200, await landed.clone().text());
    assert.match(await landed.text(), /Logged in as User alice/);
    const replay = await fetch(callback);
    assert.equal(replay.status, 400);

    const loggedIn = (await (await status(viewer)).json()) as Record<string, unknown>;
    assert.equal(loggedIn.loggedIn, true);
    assert.equal(loggedIn.sub, 'alice');
    // Sealed in the user directory's store; no refresh token in any file, nor in the output.
    const dir = path.join(red!.userDir, 'iiot-auth', 'oauth2');
    await waitFor(() => fs.existsSync(path.join(dir, `oauth2-${configId}.json`)), { timeoutMs: 5000, what: 'the stored login' });
    const files = filesUnder(red!.userDir);
    for (const rt of as!.refreshTokens) {
      assert.ok(!JSON.stringify(loggedIn).includes(rt));
      assert.ok(!red!.output().includes(rt), 'no refresh token in the output');
      for (const { file, bytes } of files) assert.ok(!bytes.includes(rt), file);
    }

    // Log out: 401 without a login and for a reader (the login stays); a form post is refused; the writer's ends it.
    const logout = (bearer: string | undefined, contentType = 'application/json') =>
      fetch(`${red!.base}/iiot-auth/oauth2/${configId}/logout`, {
        method: 'POST',
        headers: { 'content-type': contentType, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
        body: contentType === 'application/json' ? '{}' : 'a=b',
      });
    assert.equal((await logout(undefined)).status, 401);
    assert.equal((await logout(viewer)).status, 401);
    assert.equal((await logout(await token('admin'), 'application/x-www-form-urlencoded')).status, 415);
    assert.equal(((await (await status(viewer)).json()) as { loggedIn: boolean }).loggedIn, true, 'still logged in');
    const ended = await logout(await token('admin'));
    assert.equal(ended.status, 200);
    assert.deepEqual(await ended.json(), { loggedIn: false, revoked: true });
    assert.equal(((await (await status(viewer)).json()) as { loggedIn: boolean }).loggedIn, false);
  });
});
