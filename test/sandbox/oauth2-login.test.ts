import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { DEFAULT_LIFETIMES, type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { consentAtSandbox } from '../helpers/sandbox-consent.js';
import { jwtClaims } from './helpers.js';

/**
 * The sandbox's OAuth 2.0 login (docs/sandbox.md, docs/protocols.md): RFC
 * 8414 metadata, the consent page, the authorization code grant with PKCE
 * S256 (RFC 7636), refresh tokens rotated at every use, and the errors of
 * RFC 6749 4.1.2.1 and 5.2. A small client written from the RFCs, not the
 * package's (test/nodes/oauth2-sandbox-login.test.ts drives the package).
 */
const REDIRECT = 'http://127.0.0.1:1880/iiot-auth/oauth2/callback';

describe('sandbox: OAuth 2.0 login (authorization code with PKCE, refresh tokens)', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox();
  });
  afterEach(() => Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES));
  after(() => sandbox.stop());

  const issuer = () => `${sandbox.url}/oauth2`;
  const pkce = () => {
    const verifier = randomBytes(32).toString('base64url');
    return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
  };
  function authorizationUrl(params: Record<string, string> = {}, challenge = pkce().challenge): string {
    const url = new URL(`${issuer()}/authorize`);
    const all = { response_type: 'code', client_id: sandbox.demo.oauth2.clientId, redirect_uri: REDIRECT, scope: 'openid read', state: 'st-1' };
    for (const [name, value] of Object.entries({ ...all, code_challenge: challenge, code_challenge_method: 'S256', ...params })) {
      if (value !== '') url.searchParams.set(name, value);
    }
    return url.href;
  }
  async function token(form: Record<string, string>): Promise<{ status: number; body: Record<string, string> }> {
    const { clientId, clientSecret } = sandbox.demo.oauth2;
    const res = await fetch(`${issuer()}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}` },
      body: new URLSearchParams(form).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  }
  /** A login through the consent page: the code and the verifier that goes with it. */
  async function codeOf(params: Record<string, string> = {}): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = pkce();
    const back = new URL(await consentAtSandbox(authorizationUrl(params, challenge)));
    return { code: back.searchParams.get('code')!, verifier };
  }
  const exchange = (code: string, verifier: string, extra: Record<string, string> = {}) =>
    token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, ...extra });
  const whoami = (accessToken: string) => fetch(`${issuer()}/api/whoami`, { headers: { authorization: `Bearer ${accessToken}` } });

  it('publishes RFC 8414 metadata where the issuer <sandbox>/oauth2 puts it', async () => {
    const res = await fetch(`${sandbox.url}/.well-known/oauth-authorization-server/oauth2`);
    assert.equal(res.status, 200);
    const metadata = (await res.json()) as Record<string, unknown>;
    assert.equal(metadata.issuer, issuer());
    assert.equal(metadata.authorization_endpoint, `${issuer()}/authorize`);
    assert.equal(metadata.token_endpoint, `${issuer()}/token`);
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(metadata.grant_types_supported, ['client_credentials', 'authorization_code', 'refresh_token']);
  });

  it('consent page (escaped) → Allow → code → tokens with PKCE; the API takes the access token, not the ID token', async () => {
    const { verifier, challenge } = pkce();
    const odd = `${REDIRECT}?tab="<b>x</b>"`;
    const page = await fetch(authorizationUrl({ redirect_uri: odd }, challenge));
    const html = await page.text();
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(html, /Demo Operator/);
    assert.match(html, /openid read/);
    assert.ok(!html.includes('<b>x</b>') && html.includes('&#60;b&#62;x&#60;/b&#62;'), 'the redirect URI is shown escaped');

    const back = new URL(await consentAtSandbox(authorizationUrl({ redirect_uri: odd }, challenge)));
    assert.equal(back.searchParams.get('tab'), '"<b>x</b>"', "the redirect URI's own query is kept");
    assert.equal(back.searchParams.get('state'), 'st-1');
    const code = back.searchParams.get('code')!;
    const tokens = await exchange(code, verifier, { redirect_uri: odd });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(tokens.body.token_type, 'Bearer');
    assert.equal(tokens.body.scope, 'openid read');
    assert.ok(tokens.body.refresh_token);
    assert.equal(jwtClaims(tokens.body.id_token!).name, 'Demo Operator');
    const me = await whoami(tokens.body.access_token!);
    assert.equal(me.status, 200);
    assert.deepEqual(await me.json(), {
      client_id: sandbox.demo.oauth2.clientId,
      client_auth: 'basic',
      scope: 'openid read',
      audience: sandbox.demo.oauth2.audience,
      params: {},
      user: 'demo-operator',
    });
    assert.equal((await whoami(tokens.body.id_token!)).status, 401, 'an ID token is no access token');
  });

  it('rotates the refresh token at every use: the old one is invalid_grant; a refresh may narrow the scope, not widen it', async () => {
    const { code, verifier } = await codeOf();
    const first = (await exchange(code, verifier)).body.refresh_token!;
    const second = await token({ grant_type: 'refresh_token', refresh_token: first });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.ok(second.body.refresh_token && second.body.refresh_token !== first, 'a new refresh token');
    assert.equal(second.body.id_token, undefined);
    assert.equal((await whoami(second.body.access_token!)).status, 200);
    const replay = await token({ grant_type: 'refresh_token', refresh_token: first });
    assert.equal(replay.status, 400);
    assert.equal(replay.body.error, 'invalid_grant');

    const narrow = await token({ grant_type: 'refresh_token', refresh_token: second.body.refresh_token!, scope: 'read' });
    assert.equal(narrow.status, 200, JSON.stringify(narrow.body));
    assert.equal(narrow.body.scope, 'read');
    const wide = await token({ grant_type: 'refresh_token', refresh_token: narrow.body.refresh_token!, scope: 'read write' });
    assert.equal(wide.status, 400);
    assert.equal(wide.body.error, 'invalid_scope');
  });

  it('a code works once (a replay revokes its refresh tokens), with its own verifier and redirect URI, and not after its lifetime', async () => {
    const login = await codeOf();
    const tokens = await exchange(login.code, login.verifier);
    assert.equal(tokens.status, 200);
    const replay = await exchange(login.code, login.verifier);
    assert.equal(replay.status, 400);
    assert.equal(replay.body.error, 'invalid_grant');
    assert.match(replay.body.error_description!, /used already/);
    const revoked = await token({ grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token! });
    assert.equal(revoked.body.error, 'invalid_grant', "the replayed code's refresh token is revoked");

    const wrong = await codeOf();
    const wrongVerifier = await exchange(wrong.code, pkce().verifier);
    assert.equal(wrongVerifier.status, 400);
    assert.equal(wrongVerifier.body.error, 'invalid_grant');
    assert.match(wrongVerifier.body.error_description!, /PKCE/);
    const none = await codeOf();
    assert.equal((await token({ grant_type: 'authorization_code', code: none.code, redirect_uri: REDIRECT })).body.error, 'invalid_grant');
    const elsewhere = await codeOf();
    const moved = await exchange(elsewhere.code, elsewhere.verifier, { redirect_uri: 'http://127.0.0.1:1880/other' });
    assert.equal(moved.body.error, 'invalid_grant');
    assert.match(moved.body.error_description!, /redirect_uri/);

    sandbox.lifetimes.oauth2Code = 0;
    const late = await codeOf();
    const expired = await exchange(late.code, late.verifier);
    assert.equal(expired.body.error, 'invalid_grant');
    assert.match(expired.body.error_description!, /expired/);
  });

  it('Deny sends the browser back with access_denied and the state; a consent page answers once', async () => {
    const back = new URL(await consentAtSandbox(authorizationUrl({ state: 'st-deny' }), 'deny'));
    assert.equal(back.origin + back.pathname, REDIRECT);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), 'st-deny');
    assert.equal(back.searchParams.get('code'), null);

    const html = await (await fetch(authorizationUrl())).text();
    const consent = /name="consent" value="([^"]+)"/.exec(html)![1]!;
    const answer = () =>
      fetch(`${issuer()}/authorize`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ consent, decision: 'allow' }).toString(),
      });
    assert.equal((await answer()).status, 303);
    const again = await answer();
    assert.equal(again.status, 400);
    assert.match(await again.text(), /expired or was answered already/);
  });

  it('errors: an unknown client or unregistered redirect URI is a page (no redirect); the rest go back to the client (RFC 6749 4.1.2.1)', async () => {
    for (const [params, words] of [
      [{ client_id: 'someone-else' }, /unknown client_id/],
      [{ redirect_uri: 'https://evil.example/cb' }, /not registered/],
      [{ redirect_uri: 'http://192.168.1.2:1880/cb' }, /not registered/],
      [{ redirect_uri: '' }, /not registered/],
    ] as const) {
      const res = await fetch(authorizationUrl(params), { redirect: 'manual' });
      assert.equal(res.status, 400, JSON.stringify(params));
      assert.equal(res.headers.get('location'), null);
      assert.match(await res.text(), words);
    }
    for (const [params, error] of [
      [{ code_challenge: '' }, 'invalid_request'],
      [{ code_challenge_method: 'plain' }, 'invalid_request'],
      [{ response_type: 'token' }, 'unsupported_response_type'],
      [{ scope: 'read admin' }, 'invalid_scope'],
    ] as const) {
      const res = await fetch(authorizationUrl(params), { redirect: 'manual' });
      assert.equal(res.status, 303, JSON.stringify(params));
      const back = new URL(res.headers.get('location')!);
      assert.equal(back.searchParams.get('error'), error, JSON.stringify(params));
      assert.equal(back.searchParams.get('state'), 'st-1');
    }
    const unknownGrant = await token({ grant_type: 'password', username: 'a', password: 'b' });
    assert.equal(unknownGrant.body.error, 'unsupported_grant_type');
  });

  it('revokeTokens() ends every login: refresh tokens and codes too', async () => {
    const { code, verifier } = await codeOf();
    const refreshToken = (await exchange(code, verifier)).body.refresh_token!;
    const pending = await codeOf();
    sandbox.revokeTokens();
    assert.equal((await token({ grant_type: 'refresh_token', refresh_token: refreshToken })).body.error, 'invalid_grant');
    assert.equal((await exchange(pending.code, pending.verifier)).body.error, 'invalid_grant');
  });
});
