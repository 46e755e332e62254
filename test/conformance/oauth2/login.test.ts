import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { FileRecordStore } from '../../../src/core/file-record-store.js';
import { HttpClient } from '../../../src/core/http/index.js';
import { KeyedMutex, type RecordStore } from '../../../src/core/record-store.js';
import { RedisRecordStore } from '../../../src/core/redis-record-store.js';
import { SealedRecordStore } from '../../../src/core/sealed-record-store.js';
import { parseSealingKeys } from '../../../src/core/sealing-keys.js';
import { OAUTH2_RECORD_WORDS, oauth2KeyPrefix } from '../../../src/nodes/oauth2-store.js';
import { OAuth2LoginClient, SESSION_SECRET_FIELDS, sessionId } from '../../../src/platforms/oauth2-login.js';
import { validateSettings } from '../../../src/platforms/oauth2.js';
import { FlowHarness as H } from '../../helpers/flow.js';
import { outcomeOf } from '../../helpers/outcome.js';
import { RedisServer } from '../../helpers/redis-server.js';
import { TEST_BACKOFF } from '../../helpers/settings.js';
import { waitFor } from '../../helpers/wait.js';
import { type AuthorizationServer, type ConformanceClient, startAuthorizationServer } from './authorization-server.js';
import { credentialsOf, MODULES, type OAuth2Flow, oauth2Flow } from './flows.js';
import { loginAtProvider } from './login-driver.js';

/**
 * The authorization code grant with PKCE and the refresh token grant against
 * oidc-provider (PKCE required, refresh tokens rotated with reuse detection,
 * its own login and consent pages): the login runs through the package's
 * admin routes with an HTTP client in the browser's place; the refresh token
 * is kept sealed in the record store, rotated ones are stored before the
 * access token is used, a restart needs no new login, two runtimes sharing
 * one login on Redis never send the same refresh token twice, and the
 * callback refuses what no write-permitted user started.
 */
const REDIRECT = 'http://127.0.0.1:1880/iiot-auth/oauth2/callback';
const SCOPE = 'openid offline_access profile';
const KEY = randomBytes(32).toString('base64');

describe('OAuth 2.0 conformance (oidc-provider): authorization code with PKCE, refresh tokens', function () {
  this.timeout(60_000);
  let as: AuthorizationServer;
  let dir: string;
  const settings = (extra: Record<string, unknown> = {}) => ({
    iiotAuth: { ...TEST_BACKOFF, oauth2StateDir: dir, agentStore: { encryption: { key: KEY }, ...extra } },
  });
  const flow = (client: ConformanceClient = as.clients.code): OAuth2Flow =>
    oauth2Flow({
      config: { issuer: as.issuer, apiUrl: as.apiUrl, grant: 'authorization_code', clientAuth: 'basic', scope: SCOPE },
      credentials: credentialsOf(client),
    });
  const secrets = () => [as.clients.code.clientSecret!, as.clients.codeReuse.clientSecret!, ...as.refreshTokens];

  /** The dialog's "Log in", the provider's pages, and the callback: the callback's answer. */
  async function logIn(configId: string): Promise<{ status: number; text: string; callback: string }> {
    const started = await H.request().post(`/iiot-auth/oauth2/${configId}/login`).set('content-type', 'application/json').send({ callbackUrl: REDIRECT });
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const callback = await loginAtProvider(started.body.authorizationUrl as string, REDIRECT);
    const answer = await H.request().get(callback.slice(new URL(callback).origin.length));
    return { status: answer.status, text: answer.text, callback };
  }
  /** A refresh grant sent straight to oidc-provider as the code client, as someone who copied the refresh token would: its answer. */
  const refreshAtProvider = async (refreshToken: string) => {
    const basic = `Basic ${Buffer.from(`${as.clients.code.clientId}:${as.clients.code.clientSecret}`).toString('base64')}`;
    const answer = await request(`${as.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
    });
    return (await answer.body.json()) as { error?: string };
  };
  const loginStatus = async (configId: string) => (await H.request().get(`/iiot-auth/oauth2/${configId}/login`)).body as Record<string, unknown>;
  const sealedFile = (store: RecordStore) =>
    new SealedRecordStore(store, { secretFields: SESSION_SECRET_FIELDS, keys: parseSealingKeys({ key: KEY }, 'key'), keySetting: 'key' }, OAUTH2_RECORD_WORDS);

  before(async () => {
    as = await startAuthorizationServer({ loginRedirectUri: REDIRECT });
  });
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-oauth2-login-'));
  });
  afterEach(async () => {
    as.onAccepted = undefined;
    as.loseRefreshAnswers(0);
    await H.unload();
    await H.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  after(async () => {
    await as?.stop();
  });

  it('login → refresh token stored sealed → tokens from the refresh grant, each rotated token stored before use; a restart needs no new login', async () => {
    await H.start(settings());
    const f = flow();
    await H.load(MODULES, f.nodes, f.credentials);
    const client = as.clients.code.clientId;

    // Before the login: a clear error, and the status says so.
    const before = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    assert.equal(before.kind, 'error');
    assert.equal(before.error?.code, 'AUTH_REJECTED');
    assert.match(before.error?.message ?? '', /log in again in the config dialog/);
    assert.equal((await loginStatus(f.ids.config)).loggedIn, false);

    const login = await logIn(f.ids.config);
    assert.equal(login.status, 200, login.text);
    assert.match(login.text, /Logged in as User alice/);
    assert.match(login.text, /postMessage\(.*"http:\/\/127\.0\.0\.1:1880"\)/);
    assert.equal(as.grantedOf(client, 'authorization_code'), 1);
    const status = await loginStatus(f.ids.config);
    assert.equal(status.loggedIn, true);
    assert.equal(status.sub, 'alice');
    assert.equal(status.name, 'User alice');
    assert.match(String(status.scope), /offline_access/);

    // Sealed at rest: the file holds no refresh token, and opens with the key.
    const bytes = fs.readdirSync(dir).map((name) => fs.readFileSync(path.join(dir, name), 'utf8'));
    assert.ok(bytes.join('').includes('$sealed'), 'the record is sealed');
    for (const token of as.refreshTokens) assert.ok(!bytes.join('').includes(token), 'no refresh token in the store bytes');
    const store = sealedFile(new FileRecordStore(dir, OAUTH2_RECORD_WORDS));
    const stored = async () => (await store.read(sessionId(f.ids.config)))?.value.refreshToken;
    assert.equal(await stored(), as.refreshTokens.at(-1));

    // At the moment the API sees an access token, the refresh token it came with is the stored one.
    const mismatches: string[] = [];
    as.onAccepted = async () => {
      if ((await stored()) !== as.refreshTokens.at(-1)) mismatches.push('the rotated refresh token was not stored before use');
    };
    const token = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    assert.equal(token.kind, 'output', JSON.stringify(token.error));
    assert.ok(as.refreshedAccessTokens.includes((token.msg.token as { value: string }).value), 'the token came from the refresh grant');
    assert.equal(as.grantedOf(client, 'refresh_token'), 1);
    const api = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(api.kind, 'output', JSON.stringify(api.error));
    assert.equal(api.msg.statusCode, 200);
    assert.deepEqual(mismatches, []);
    assert.equal(await stored(), as.refreshTokens.at(-1), 'the rotated refresh token is stored');
    assert.ok(((await loginStatus(f.ids.config)).lastUsedAt as string) > (status.loggedInAt as string));

    // A restart of the runtime: the next message refreshes with the stored token, no login.
    await H.unload();
    await H.stop();
    await H.start(settings());
    await H.load(MODULES, f.nodes, f.credentials);
    const again = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(again.kind, 'output', JSON.stringify(again.error));
    assert.equal(again.msg.statusCode, 200);
    assert.equal(as.grantedOf(client, 'refresh_token'), 2);
    assert.equal(as.grantedOf(client, 'authorization_code'), 1, 'no new login');
    assert.equal(as.revokedGrants, 0);
    assert.deepEqual(mismatches, []);
    const answers = JSON.stringify([status, await loginStatus(f.ids.config), login.text]);
    for (const secret of [...secrets(), ...as.refreshedAccessTokens]) assert.ok(!answers.includes(secret), 'no token in an admin answer');
    assert.deepEqual(H.leaks(secrets()), []);
    // Since the restart only the request node ran, which never shows its token: the access token is nowhere either.
    assert.deepEqual(H.leaks(as.refreshedAccessTokens.slice(-1)), []);
  });

  it('refuses a forged, replayed or expired state, and a login without a deployed node; shows the provider error as written, escaped; nothing stored', async () => {
    await H.start(settings());
    const f = flow();
    await H.load(MODULES, f.nodes, f.credentials);
    const files = () => fs.readdirSync(dir).filter((name) => name.endsWith('.json'));

    const forged = await H.request().get(`/iiot-auth/oauth2/callback?code=abc&state=${randomBytes(32).toString('base64url')}`);
    assert.equal(forged.status, 400);
    assert.match(forged.text, /not started from the config dialog/);
    const none = await H.request().get('/iiot-auth/oauth2/callback?code=abc');
    assert.equal(none.status, 400);
    assert.deepEqual(files(), []);

    // The provider's own error, as it wrote it, never as markup.
    const started = await H.request().post(`/iiot-auth/oauth2/${f.ids.config}/login`).set('content-type', 'application/json').send({ callbackUrl: REDIRECT });
    const state = new URL(started.body.authorizationUrl as string).searchParams.get('state')!;
    const denied = await H.request().get(
      `/iiot-auth/oauth2/callback?state=${state}&error=access_denied&error_description=${encodeURIComponent('<b>no</b> "thanks"')}`,
    );
    assert.equal(denied.status, 400);
    assert.match(denied.text, /The provider refused the login: access_denied \(&#60;b&#62;no&#60;\/b&#62; &#34;thanks&#34;\)/);
    assert.ok(!denied.text.includes('<b>'));
    assert.deepEqual(files(), []);

    // Replayed: the same callback twice; the second finds no state and stores nothing new.
    const login = await logIn(f.ids.config);
    assert.equal(login.status, 200, login.text);
    const record = fs.readFileSync(path.join(dir, files()[0]!), 'utf8');
    const replay = await H.request().get(login.callback.slice(new URL(login.callback).origin.length));
    assert.equal(replay.status, 400);
    assert.match(replay.text, /finished already/);
    assert.equal(fs.readFileSync(path.join(dir, files()[0]!), 'utf8'), record);

    // The PKCE verifier is what makes a code worth anything: the provider refuses the code without it.
    const started2 = await H.request().post(`/iiot-auth/oauth2/${f.ids.config}/login`).set('content-type', 'application/json').send({ callbackUrl: REDIRECT });
    const stolen = new URL(await loginAtProvider(started2.body.authorizationUrl as string, REDIRECT)).searchParams.get('code')!;
    const direct = await request(`${as.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${as.clients.code.clientId}:${as.clients.code.clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: stolen, redirect_uri: REDIRECT }).toString(),
    });
    const refusal = (await direct.body.json()) as { error: string };
    assert.equal(direct.statusCode, 400);
    assert.equal(refusal.error, 'invalid_grant');

    // The start route: JSON only, a deployed node only, the callback route only.
    const form = await H.request().post(`/iiot-auth/oauth2/${f.ids.config}/login`).set('content-type', 'application/x-www-form-urlencoded').send('a=b');
    assert.equal(form.status, 415);
    const unknown = await H.request().post('/iiot-auth/oauth2/nope/login').set('content-type', 'application/json').send({});
    assert.equal(unknown.status, 404);
    const elsewhere = await H.request()
      .post(`/iiot-auth/oauth2/${f.ids.config}/login`)
      .set('content-type', 'application/json')
      .send({ callbackUrl: 'https://evil.example/collect' });
    assert.equal(elsewhere.status, 400);
    assert.deepEqual(H.leaks(secrets()), []);
  });

  it('the provider revoked the login (invalid_grant): AUTH_REJECTED that says to log in again', async () => {
    await H.start(settings());
    const f = flow();
    await H.load(MODULES, f.nodes, f.credentials);
    assert.equal((await logIn(f.ids.config)).status, 200);
    // Reuse the stored refresh token once from outside: oidc-provider's reuse detection revokes the whole grant.
    const store = sealedFile(new FileRecordStore(dir, OAUTH2_RECORD_WORDS));
    const first = (await store.read(sessionId(f.ids.config)))!.value.refreshToken as string;
    await refreshAtProvider(first);
    await refreshAtProvider(first);
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    assert.equal(outcome.kind, 'error');
    assert.equal(outcome.error?.code, 'AUTH_REJECTED');
    assert.match(outcome.error?.message ?? '', /invalid_grant.*log in again in the config dialog/);
    // The login is over: the dialog's status says so, and the refused refresh token is not kept to be sent again.
    const status = await H.request().get(`/iiot-auth/oauth2/${f.ids.config}/login`);
    assert.equal(status.body.loggedIn, false);
    assert.equal((await store.read(sessionId(f.ids.config)))!.value.refreshToken, '');
    assert.deepEqual(H.leaks(secrets()), []);
  });

  it('Log out: the provider revokes the refresh token (RFC 7009) and the grant, the stored login is cleared, the next message asks to log in', async () => {
    await H.start(settings());
    const f = flow();
    await H.load(MODULES, f.nodes, f.credentials);
    assert.equal((await logIn(f.ids.config)).status, 200);
    const working = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(working.kind, 'output', JSON.stringify(working.error));
    const store = sealedFile(new FileRecordStore(dir, OAUTH2_RECORD_WORDS));
    const refreshToken = (await store.read(sessionId(f.ids.config)))!.value.refreshToken as string;
    const revoked = as.revokedGrants;

    const answer = await H.request().post(`/iiot-auth/oauth2/${f.ids.config}/logout`).set('content-type', 'application/json').send({});
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { loggedIn: false, revoked: true });
    assert.equal(as.revokedGrants - revoked, 1, 'oidc-provider revoked the grant');
    // The provider no longer takes the refresh token, even from someone who copied it.
    assert.equal((await refreshAtProvider(refreshToken)).error, 'invalid_grant');
    // Cleared here: the status, the store, and the access token of the logged-out user.
    assert.equal((await loginStatus(f.ids.config)).loggedIn, false);
    assert.equal((await store.read(sessionId(f.ids.config)))!.value.refreshToken, '');
    const after = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(after.kind, 'error');
    assert.equal(after.error?.code, 'AUTH_REJECTED');
    assert.match(after.error?.message ?? '', /not logged in/);
    // Once more: nothing to revoke.
    const again = await H.request().post(`/iiot-auth/oauth2/${f.ids.config}/logout`).set('content-type', 'application/json').send({});
    assert.deepEqual(again.body, { loggedIn: false, revoked: false, reason: 'not logged in' });
    assert.deepEqual(H.leaks(secrets()), []);
  });

  describe('a refresh whose answer was lost after the server rotated the token', () => {
    /** The token node's message, sent again while the engine still answers with the lost answer's error (its backoff). */
    const afterTheLostAnswer = (ids: OAuth2Flow['ids']) =>
      waitFor(
        async () => {
          const outcome = await outcomeOf(ids, () => H.node(ids.token).receive({}));
          return outcome.error?.code === 'HTTP_CONNECTION_RESET' ? undefined : outcome;
        },
        { timeoutMs: 10_000, intervalMs: 20, what: 'a token request after the backoff of the lost answer' },
      );

    it('with rotation and no grace period (oidc-provider): the old token is refused, the grant revoked; AUTH_REJECTED says the answer was lost and to log in again', async () => {
      await H.start(settings());
      const f = flow();
      await H.load(MODULES, f.nodes, f.credentials);
      assert.equal((await logIn(f.ids.config)).status, 200);
      const store = sealedFile(new FileRecordStore(dir, OAUTH2_RECORD_WORDS));
      const stored = async () => (await store.read(sessionId(f.ids.config)))?.value.refreshToken as string | undefined;
      const old = await stored();
      const client = as.clients.code.clientId;
      const refreshes = as.grantedOf(client, 'refresh_token');
      const revoked = as.revokedGrants;

      as.loseRefreshAnswers(1);
      const lost = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
      assert.equal(lost.kind, 'error');
      assert.equal(lost.error?.code, 'HTTP_CONNECTION_RESET', JSON.stringify(lost.error));
      assert.equal(as.grantedOf(client, 'refresh_token'), refreshes + 1, 'the server granted the refresh and rotated the token');
      assert.notEqual(as.refreshTokens.at(-1), old);
      assert.equal(await stored(), old, 'the rotated token never arrived: the old one is still stored');

      const refused = await afterTheLostAnswer(f.ids);
      assert.equal(refused.kind, 'error');
      assert.equal(refused.error?.code, 'AUTH_REJECTED');
      assert.match(
        refused.error?.message ?? '',
        /invalid_grant.*the answer to an earlier refresh was lost .*had probably rotated the refresh token.*: log in again in the config dialog$/,
      );
      assert.equal(as.refreshTokenUses.get(old ?? ''), 2, 'the stored (old) token was sent again');
      assert.equal(as.revokedGrants, revoked + 1, "oidc-provider's reuse detection revoked the grant");
      assert.equal((await loginStatus(f.ids.config)).loggedIn, false);
      assert.equal(await stored(), '', 'the refused token is not kept to be sent again');
      assert.deepEqual(H.leaks(secrets()), []);
    });

    it('a server that allows reusing the refresh token: the next message refreshes with the stored token, no new login', async () => {
      await H.start(settings());
      const f = flow(as.clients.codeReuse);
      await H.load(MODULES, f.nodes, f.credentials);
      assert.equal((await logIn(f.ids.config)).status, 200);
      const store = sealedFile(new FileRecordStore(dir, OAUTH2_RECORD_WORDS));
      const stored = async () => (await store.read(sessionId(f.ids.config)))?.value.refreshToken as string | undefined;
      const token = await stored();
      const client = as.clients.codeReuse.clientId;
      const revoked = as.revokedGrants;

      as.loseRefreshAnswers(1);
      const lost = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
      assert.equal(lost.error?.code, 'HTTP_CONNECTION_RESET', JSON.stringify(lost.error));
      const recovered = await afterTheLostAnswer(f.ids);
      assert.equal(recovered.kind, 'output', JSON.stringify(recovered.error));
      const api = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(api.kind, 'output', JSON.stringify(api.error));
      assert.equal(api.msg.statusCode, 200);
      assert.equal(as.refreshTokenUses.get(token ?? ''), 2, 'the same refresh token, sent again, was accepted');
      assert.equal(as.grantedOf(client, 'refresh_token'), 2);
      assert.equal(as.grantedOf(client, 'authorization_code'), 1, 'no new login');
      assert.equal(as.revokedGrants, revoked);
      assert.equal(await stored(), token);
      assert.equal((await loginStatus(f.ids.config)).loggedIn, true);
      assert.deepEqual(H.leaks(secrets()), []);
    });
  });

  describe('on Redis', () => {
    let redis: RedisServer;
    before(async () => {
      redis = await RedisServer.start();
    });
    after(async () => {
      await redis?.stop();
    });

    it('two runtimes sharing one login never send a refresh token twice: both keep working, the grant is never revoked; sealed on Redis', async () => {
      await H.start(settings({ redis: { url: redis.url, keyPrefix: 'login-test:' } }));
      const f = flow();
      await H.load(MODULES, f.nodes, f.credentials);
      assert.equal((await logIn(f.ids.config)).status, 200);
      const revoked = as.revokedGrants;

      // The second runtime: its own mutex, Redis connection, HTTP client and token requests, on the same record.
      const redisStore = new RedisRecordStore({ url: redis.url, keyPrefix: oauth2KeyPrefix('login-test:') }, OAUTH2_RECORD_WORDS);
      const http = new HttpClient({ timeoutMs: 10_000 });
      const settingsOf = validateSettings({
        issuer: as.issuer,
        tokenUrl: '',
        apiUrl: as.apiUrl,
        clientId: as.clients.code.clientId,
        clientSecret: as.clients.code.clientSecret!,
        privateKey: '',
        keyId: '',
        signingAlg: '',
        scope: SCOPE,
        audience: '',
        resource: '',
        clientAuth: 'basic',
        extraParams: '',
        grant: 'authorization_code',
        dpop: 'auto',
      });
      const other = new OAuth2LoginClient(
        f.ids.config,
        settingsOf,
        { clientId: settingsOf.clientId, clientSecret: settingsOf.clientSecret, signingKey: undefined, keyId: '', signingAlg: '' },
        sealedFile(redisStore),
        new KeyedMutex(),
      );
      try {
        // The runtime keeps its access token; dropping it makes each round's message refresh.
        const credential = () => H.node<{ connection: { credential: { drop(): void } } }>(f.ids.config).connection.credential;
        const before = as.grantedOf(as.clients.code.clientId, 'refresh_token');
        // Ten rounds: in each, both runtimes refresh at once.
        for (let round = 0; round < 10; round++) {
          const [ours, theirs] = await Promise.all([outcomeOf(f.ids, () => H.node(f.ids.token).receive({})), other.fetchToken(http)]);
          assert.equal(ours.kind, 'output', JSON.stringify(ours.kind === 'error' ? ours.error : undefined));
          assert.ok(theirs.value);
          credential().drop();
        }
        assert.ok(as.grantedOf(as.clients.code.clientId, 'refresh_token') - before >= 20);
        assert.equal(as.revokedGrants, revoked, 'the grant was never revoked: no refresh token was sent twice');
        const raw = await redisStore.read(sessionId(f.ids.config));
        const text = JSON.stringify(raw?.value);
        assert.ok(text.includes('$sealed'));
        for (const token of as.refreshTokens) assert.ok(!text.includes(token), 'no refresh token readable on Redis');
        assert.deepEqual(H.leaks(secrets()), []);
      } finally {
        await http.close();
        await redisStore.close();
      }
    });
  });
});
