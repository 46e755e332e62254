import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { UnsecuredJWT } from 'jose';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import type { HttpClient, HttpRequest } from '../../src/core/http/index.js';
import { KeyedMutex, RecordConflict, type RecordLease, type RecordVersion } from '../../src/core/record-store.js';
import { OAUTH2_RECORD_WORDS } from '../../src/nodes/oauth2-store.js';
import { authorizationUrl, idTokenClaims, LOGIN_TTL_MS, OAuth2LoginClient, PendingLogins, sessionId } from '../../src/platforms/oauth2-login.js';
import { validateSettings } from '../../src/platforms/oauth2.js';

/** The login's pieces without a network: state and verifier, the authorization URL, the ID token's display claims. */
describe('OAuth 2.0 login (no network)', () => {
  it('a state is taken once, and not after ten minutes; the challenge is the S256 of a verifier of 43 characters', () => {
    let now = 1_000_000;
    const logins = new PendingLogins(() => now);
    const first = logins.start('cfg', 'http://127.0.0.1:1880/iiot-auth/oauth2/callback', 'admin');
    const login = logins.take(first.state);
    assert.ok(login);
    assert.equal(login.configId, 'cfg');
    assert.equal(login.user, 'admin');
    assert.equal(login.verifier.length, 43);
    assert.equal(createHash('sha256').update(login.verifier).digest('base64url'), first.challenge);
    assert.equal(logins.take(first.state), undefined, 'one use');

    const second = logins.start('cfg', 'http://x/iiot-auth/oauth2/callback', '');
    now += LOGIN_TTL_MS - 1;
    const third = logins.start('cfg', 'http://x/iiot-auth/oauth2/callback', '');
    now += 1;
    assert.equal(logins.take(second.state), undefined, 'expired');
    assert.ok(logins.take(third.state), 'still fresh');
    assert.equal(logins.take('forged'), undefined);
    assert.notEqual(second.state, third.state);
  });

  it('the authorization URL: code, S256 challenge, state, redirect URI, scope; prompt=consent with offline_access; the endpoint keeps its own query', () => {
    const settings = validateSettings({
      issuer: 'https://as.example',
      tokenUrl: '',
      apiUrl: 'https://api.example',
      clientId: 'c1',
      clientSecret: 's',
      privateKey: '',
      keyId: '',
      signingAlg: '',
      scope: 'openid offline_access',
      audience: '',
      resource: '',
      clientAuth: 'basic',
      extraParams: '',
      grant: 'authorization_code',
      dpop: 'auto',
    });
    const url = new URL(authorizationUrl('https://as.example/auth?tenant=a', settings, 'https://nr.example/iiot-auth/oauth2/callback', 'st', 'ch'));
    const p = Object.fromEntries(url.searchParams);
    assert.deepEqual(p, {
      tenant: 'a',
      response_type: 'code',
      client_id: 'c1',
      redirect_uri: 'https://nr.example/iiot-auth/oauth2/callback',
      scope: 'openid offline_access',
      state: 'st',
      code_challenge: 'ch',
      code_challenge_method: 'S256',
      prompt: 'consent',
    });
    assert.throws(() => validateSettings({ ...settings, issuer: '', tokenUrl: 'https://as.example/token' }), {
      code: 'CONFIG_INVALID',
      message: /needs the issuer/,
    });
  });

  it("the ID token's sub and name, for display; anything else is nothing", () => {
    const jwt = new UnsecuredJWT({ sub: 'alice', name: 'Alice A.' }).encode();
    assert.deepEqual(idTokenClaims(jwt), { sub: 'alice', name: 'Alice A.' });
    assert.deepEqual(idTokenClaims('not a jwt'), {});
    assert.deepEqual(idTokenClaims(undefined), {});
  });

  it('a rotated refresh token is kept even when the lock expired during the refresh (this process stalled), unless the record changed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-oauth2-lease-'));
    try {
      const settings = validateSettings({
        issuer: 'https://as.example',
        tokenUrl: 'https://as.example/token',
        apiUrl: 'https://api.example',
        clientId: 'c1',
        clientSecret: 's',
        privateKey: '',
        keyId: '',
        signingAlg: '',
        scope: '',
        audience: '',
        resource: '',
        clientAuth: 'basic',
        extraParams: '',
        grant: 'authorization_code',
        dpop: 'auto',
      });
      // A store whose lock is lost before the first write with it.
      class StallingStore extends FileRecordStore {
        override write(id: string, value: Record<string, unknown>, expected: RecordVersion | undefined, lease?: RecordLease): Promise<RecordVersion> {
          if (lease) return Promise.reject(new RecordConflict('lease-lost', id, dir, OAUTH2_RECORD_WORDS.failureCode));
          return super.write(id, value, expected);
        }
      }
      const store = new StallingStore(dir, OAUTH2_RECORD_WORDS);
      const id = sessionId('cfg1');
      await store.write(id, { refreshToken: 'rt-1', issuer: settings.issuer, clientId: 'c1', scope: '', loggedInAt: new Date().toISOString() }, undefined);
      const sent: string[] = [];
      let n = 1;
      const http = {
        async send(req: HttpRequest) {
          sent.push(new URLSearchParams(String(req.body)).get('refresh_token') ?? '');
          n += 1;
          return {
            statusCode: 200,
            headers: { 'content-type': 'application/json' },
            body: Buffer.from(JSON.stringify({ access_token: `at-${n}`, token_type: 'Bearer', expires_in: 300, refresh_token: `rt-${n}` })),
            url: req.url,
          };
        },
      } as unknown as HttpClient;
      const client = new OAuth2LoginClient(
        'cfg1',
        settings,
        { clientId: 'c1', clientSecret: 's', signingKey: undefined, keyId: '', signingAlg: '' },
        store,
        new KeyedMutex(),
      );
      assert.equal((await client.fetchToken(http)).value, 'at-2');
      assert.equal((await store.read(id))?.value.refreshToken, 'rt-2', 'the rotated token is stored');
      assert.equal((await client.fetchToken(http)).value, 'at-3');
      assert.deepEqual(sent, ['rt-1', 'rt-2'], 'never the same refresh token twice');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
