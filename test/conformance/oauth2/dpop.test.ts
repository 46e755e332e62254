import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileRecordStore } from '../../../src/core/file-record-store.js';
import { SealedRecordStore } from '../../../src/core/sealed-record-store.js';
import { parseSealingKeys } from '../../../src/core/sealing-keys.js';
import { OAUTH2_RECORD_WORDS } from '../../../src/nodes/oauth2-store.js';
import { SESSION_SECRET_FIELDS, sessionId } from '../../../src/platforms/oauth2-login.js';
import { FlowHarness as H, uid } from '../../helpers/flow.js';
import { countOutcomes, outcomeOf } from '../../helpers/outcome.js';
import { TEST_BACKOFF } from '../../helpers/settings.js';
import { type AuthorizationServer, startAuthorizationServer } from './authorization-server.js';
import { coreNode, credentialsOf, MODULES, type OAuth2Flow, oauth2Flow, secretsOf } from './flows.js';
import { loginAtProvider } from './login-driver.js';

/**
 * DPoP (RFC 9449) against oidc-provider, whose token endpoint and userinfo
 * endpoint check the proofs themselves, and the conformance resource server,
 * which checks them as RFC 9449 7.1 says: a client that must use DPoP, the
 * three settings, server nonces at the token endpoint and at the API, a core
 * http request node after get token, and a login whose key is kept sealed
 * with its refresh token across a restart.
 */
const REDIRECT = 'http://127.0.0.1:1880/iiot-auth/oauth2/callback';
const KEY = randomBytes(32).toString('base64');

describe('OAuth 2.0 conformance (oidc-provider): DPoP (RFC 9449)', function () {
  this.timeout(60_000);
  let as: AuthorizationServer;
  const flowFor = (config: Record<string, unknown>, client = as.clients.dpop): OAuth2Flow =>
    oauth2Flow({ config: { issuer: as.issuer, apiUrl: as.apiUrl, clientAuth: 'basic', scope: 'read', ...config }, credentials: credentialsOf(client) });

  describe('client credentials', () => {
    before(async () => {
      as = await startAuthorizationServer();
      await H.start();
    });
    afterEach(async () => {
      await H.unload();
      as.requireTokenNonce(false);
      as.setApiNonce(undefined);
    });
    after(async () => {
      await H.stop();
      await as?.stop();
    });

    it('auto, a client that must use DPoP: refused once without a proof, then bound tokens; 200 concurrent messages on one token, each with its own proof', async () => {
      const client = as.clients.dpop.clientId;
      const [granted, refused, dpop, proofs] = [as.granted(client), as.refused(client), as.api.dpop, as.api.proofs.length];
      const f = flowFor({ dpop: 'auto' });
      await H.load(MODULES, f.nodes, f.credentials);
      const { outputs, errors } = await countOutcomes(f.ids, async () => {
        for (let i = 0; i < 200; i++) H.node(f.ids.request).receive({ payload: i });
      });
      assert.deepEqual(
        errors.map((e) => e.error),
        [],
      );
      assert.equal(outputs.length, 200);
      assert.ok(outputs.every((m) => m.statusCode === 200));
      assert.equal(as.refused(client) - refused, 1, 'the request without a proof, refused once');
      assert.equal(as.granted(client) - granted, 1, 'one token for 200 messages');
      assert.equal(as.api.dpop - dpop, 200, 'every call accepted with the DPoP scheme and a good proof');
      const seen = as.api.proofs.slice(proofs);
      assert.equal(new Set(seen.map((p) => p.jti)).size, seen.length, 'a new jti for every proof');
      assert.ok(seen.every((p) => p.htm === 'GET' && p.htu === `${as.apiUrl}/items` && typeof p.ath === 'string'));

      const token = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({ url: `${as.apiUrl}/items` }));
      assert.equal(token.kind, 'output', JSON.stringify(token.error));
      const msgToken = token.msg.token as { type: string; value: string; headers: Record<string, string> };
      assert.equal(msgToken.type, 'dpop');
      assert.equal((token.msg.headers as Record<string, string>).authorization, `DPoP ${msgToken.value}`);
      assert.equal(typeof (token.msg.headers as Record<string, string>).dpop, 'string');
      assert.deepEqual(H.leaks(secretsOf(as.clients.dpop)), []);
    });

    it('get token then a core http request node: the proof is made for msg.method and msg.url; without msg.url a clear error', async () => {
      const f = flowFor({ dpop: 'always' });
      const ids = { token: uid('tok'), http: uid('http'), out: uid('out') };
      f.nodes.push(
        { id: ids.token, type: 'iiot-token', platform: 'oauth2', oauth2: f.ids.config, wires: [[ids.http]] },
        { id: ids.http, type: 'http request', method: 'use', ret: 'obj', url: '', wires: [[ids.out]] },
        { id: ids.out, type: 'helper' },
      );
      await H.load([...MODULES, coreNode('network/21-httprequest.js')], f.nodes, f.credentials);
      const dpop = as.api.dpop;
      for (const method of ['GET', 'POST']) {
        const answered = H.collect(ids.out, 1);
        H.node(ids.token).receive({ method, url: `${as.apiUrl}/items` });
        const [msg] = await answered;
        assert.equal(msg!.statusCode, 200, JSON.stringify(msg!.payload));
      }
      assert.equal(as.api.dpop - dpop, 2);
      const missing = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
      assert.equal(missing.kind, 'error');
      assert.equal(missing.error?.code, 'INPUT_INVALID');
      assert.match(missing.error?.message ?? '', /set msg\.url \(absolute\) and msg\.method/);
    });

    it('a 429 retried by the node: the retry carries a new proof (the resource server refuses a jti it saw)', async () => {
      const f = flowFor({ dpop: 'always' });
      await H.load(MODULES, f.nodes, f.credentials);
      const warm = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(warm.kind, 'output', JSON.stringify(warm.error));
      const [dpop, refused, proofs] = [as.api.dpop, as.api.refused, as.api.proofs.length];
      as.rateLimitApi(2);
      const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
      assert.equal(outcome.msg.statusCode, 200);
      assert.deepEqual([as.api.dpop - dpop, as.api.refused - refused, as.api.proofs.length - proofs], [1, 0, 3], 'two 429s, then accepted; three proofs');
    });

    it('a same-origin redirect: the next hop gets a new proof for its own URL', async () => {
      const f = flowFor({ dpop: 'always' });
      const request = f.nodes.find((n) => n.id === f.ids.request)!;
      request.url = '/moved';
      await H.load(MODULES, f.nodes, f.credentials);
      const [dpop, refused, proofs] = [as.api.dpop, as.api.refused, as.api.proofs.length];
      const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
      assert.equal(outcome.msg.statusCode, 200);
      assert.deepEqual([as.api.dpop - dpop, as.api.refused - refused], [1, 0]);
      assert.deepEqual(
        as.api.proofs.slice(proofs).map((p) => p.htu),
        [`${as.apiUrl}/items`],
      );
    });

    it('always, with the token URL only (no metadata): proofs from the first request, for any client; the API takes the bound token', async () => {
      const client = as.clients.basic.clientId;
      const refused = as.refused(client);
      const f = flowFor({ issuer: '', tokenUrl: `${as.issuer}/token`, dpop: 'always' }, as.clients.basic);
      await H.load(MODULES, f.nodes, f.credentials);
      const dpop = as.api.dpop;
      const api = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(api.kind, 'output', JSON.stringify(api.error));
      assert.equal(api.msg.statusCode, 200);
      assert.equal(as.refused(client) - refused, 0);
      assert.equal(as.api.dpop - dpop, 1);
    });

    it("never, with a client that must use DPoP: oidc-provider's bare invalid_grant, and the error says to try DPoP auto or always; one request", async () => {
      const client = as.clients.dpop.clientId;
      const refused = as.refused(client);
      const f = flowFor({ dpop: 'never' });
      await H.load(MODULES, f.nodes, f.credentials);
      const outcome = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
      assert.equal(outcome.kind, 'error');
      assert.equal(outcome.error?.code, 'GRANT_INVALID');
      assert.match(outcome.error?.message ?? '', /if the server requires DPoP of this client, set DPoP to auto or always/);
      assert.equal(as.refused(client) - refused, 1, 'no second request with never');
    });

    it('auto, a client that need not use DPoP: bearer tokens, no proof sent (the metadata offering DPoP is not enough)', async () => {
      const f = flowFor({ dpop: 'auto' }, as.clients.basic);
      await H.load(MODULES, f.nodes, f.credentials);
      const [dpop, proofs] = [as.api.dpop, as.api.proofs.length];
      const token = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
      assert.equal(token.kind, 'output', JSON.stringify(token.error));
      assert.equal((token.msg.token as { type: string }).type, 'bearer');
      const api = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(api.kind, 'output', JSON.stringify(api.error));
      assert.equal(api.msg.statusCode, 200);
      assert.deepEqual([as.api.dpop - dpop, as.api.proofs.length - proofs], [0, 0]);
    });

    it('server nonces: the token endpoint and the API each ask for one; the request goes once more with it, later ones carry it', async () => {
      as.requireTokenNonce(true);
      as.setApiNonce('api-nonce-1');
      const client = as.clients.dpop.clientId;
      const [granted, refused, challenges] = [as.granted(client), as.refused(client), as.api.nonceChallenges];
      const f = flowFor({ dpop: 'always' });
      await H.load(MODULES, f.nodes, f.credentials);
      const first = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(first.kind, 'output', JSON.stringify(first.error));
      assert.equal(first.msg.statusCode, 200);
      assert.equal(as.refused(client) - refused, 1, 'use_dpop_nonce at the token endpoint, once');
      assert.equal(as.granted(client) - granted, 1);
      assert.equal(as.api.nonceChallenges - challenges, 1, 'use_dpop_nonce at the API, once');
      // The nonce is remembered: the next messages are not challenged.
      const { outputs, errors } = await countOutcomes(f.ids, async () => {
        for (let i = 0; i < 20; i++) H.node(f.ids.request).receive({});
      });
      assert.deepEqual([outputs.length, errors.length], [20, 0]);
      assert.equal(as.api.nonceChallenges - challenges, 1);
      // The API moves to a new nonce while 10 messages run at once: each proof without it is challenged and
      // sent once more; none is taken for a refused token (no new token request).
      as.setApiNonce('api-nonce-2');
      const moved = await countOutcomes(f.ids, async () => {
        for (let i = 0; i < 10; i++) H.node(f.ids.request).receive({});
      });
      assert.deepEqual(
        moved.errors.map((e) => e.error),
        [],
      );
      assert.ok(moved.outputs.every((m) => m.statusCode === 200));
      assert.ok(as.api.nonceChallenges - challenges >= 2);
      assert.equal(as.granted(client) - granted, 1, 'still the first token');
    });
  });

  describe('authorization code', () => {
    let dir: string;
    const settings = () => ({ iiotAuth: { ...TEST_BACKOFF, oauth2StateDir: dir, agentStore: { encryption: { key: KEY } } } });
    before(async () => {
      as = await startAuthorizationServer({ loginRedirectUri: REDIRECT, codeDpop: true });
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-oauth2-dpop-'));
    });
    after(async () => {
      await H.unload();
      await H.stop();
      await as?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it("login and refreshes bound to one key, kept sealed with the refresh token; oidc-provider's userinfo takes the proofs, also after a restart", async () => {
      await H.start(settings());
      // The API is oidc-provider's own userinfo endpoint: it checks the DPoP proof and its ath itself.
      const f = oauth2Flow({
        config: { issuer: as.issuer, apiUrl: as.issuer, grant: 'authorization_code', clientAuth: 'basic', scope: 'openid offline_access profile' },
        credentials: credentialsOf(as.clients.code),
      });
      const userinfo = f.nodes.find((n) => n.id === f.ids.request)!;
      userinfo.url = '/me';
      await H.load(MODULES, f.nodes, f.credentials);
      const started = await H.request().post(`/iiot-auth/oauth2/${f.ids.config}/login`).set('content-type', 'application/json').send({ callbackUrl: REDIRECT });
      assert.equal(started.status, 200, JSON.stringify(started.body));
      const callback = await loginAtProvider(started.body.authorizationUrl as string, REDIRECT);
      const answer = await H.request().get(callback.slice(new URL(callback).origin.length));
      assert.equal(answer.status, 200, answer.text);
      assert.match(answer.text, /Logged in as User alice/);

      const me = async () => {
        const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
        assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
        assert.equal(outcome.msg.statusCode, 200, JSON.stringify(outcome.msg.payload));
        assert.equal((outcome.msg.payload as { sub: string }).sub, 'alice');
      };
      await me();

      // The key is in the record, sealed: the file holds neither it nor the refresh token.
      const store = new SealedRecordStore(
        new FileRecordStore(dir, OAUTH2_RECORD_WORDS),
        { secretFields: SESSION_SECRET_FIELDS, keys: parseSealingKeys({ key: KEY }, 'key'), keySetting: 'key' },
        OAUTH2_RECORD_WORDS,
      );
      const record = await store.read(sessionId(f.ids.config));
      const dpopKey = String(record?.value.dpopKey ?? '');
      assert.match(dpopKey, /-----BEGIN PRIVATE KEY-----/);
      const keyBody = dpopKey.split('\n')[1]!;
      const storedKey = async () => String((await store.read(sessionId(f.ids.config)))?.value.dpopKey ?? '');
      const bytes = fs
        .readdirSync(dir)
        .map((name) => fs.readFileSync(path.join(dir, name), 'utf8'))
        .join('');
      assert.ok(!bytes.includes(keyBody), 'the DPoP key is sealed at rest');

      // A restart: the stored key and refresh token, no new login, and the first request already carries a proof.
      await H.unload();
      await H.stop();
      await H.start(settings());
      await H.load(MODULES, f.nodes, f.credentials);
      const refused = as.refused(as.clients.code.clientId);
      await me();
      assert.equal(as.refused(as.clients.code.clientId) - refused, 0, 'the kept key is used from the first refresh on');
      assert.equal(as.grantedOf(as.clients.code.clientId, 'authorization_code'), 1, 'one login');
      assert.equal(await storedKey(), dpopKey, 'the same key after the restart, not a new one');
      assert.deepEqual(H.leaks([as.clients.code.clientSecret!, ...as.refreshTokens, keyBody]), []);
    });
  });
});
