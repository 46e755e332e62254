import assert from 'node:assert/strict';
import type { HttpResponse } from '../../src/core/http/index.js';
import { ErrorCode } from '../../src/core/errors.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import * as oauth2 from '../../src/platforms/oauth2.js';
import * as discovery from '../../src/platforms/oauth2-discovery.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import type { NodeMessage } from '../../src/nodes/node-red.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { outcomeOf } from '../helpers/outcome.js';
import { CONFIG_NODE_MODULES, PLATFORM_CASES, platformFlow } from '../helpers/platform-flows.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';

/**
 * What the OAuth 2.0 client credentials platform does beyond the matrix every
 * platform passes (test/nodes/platforms.test.ts): both client authentications,
 * scope, audience and extra parameters reaching the server, and the server's
 * own words in errors. The sandbox's /whoami shows what the token was issued for.
 */
const modules = [...CONFIG_NODE_MODULES, tokenNode, requestNode];
const c = PLATFORM_CASES.find((p) => p.platform === 'oauth2')!;

describe('OAuth 2.0 client credentials', function () {
  this.timeout(30_000);
  const env = withSandboxAndRuntime();
  let sandbox: Sandbox;
  before(() => {
    sandbox = env.sandbox;
  });
  /** Loads the case's flow with `config` over its defaults; returns what /whoami answers, or the error. */
  async function whoami(
    config: Record<string, unknown>,
    credentials?: Record<string, string>,
  ): Promise<{ msg: NodeMessage } | { error: { code: string; message: string } }> {
    const f = platformFlow(c, sandbox, { config, request: { url: '/whoami' }, ...(credentials ? { credentials } : {}) });
    await H.load(modules, f.nodes, f.credentials);
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    return outcome.kind === 'output' ? { msg: outcome.msg } : { error: outcome.error! };
  }

  for (const clientAuth of ['body', 'basic'] as const) {
    it(`client authentication "${clientAuth}": the server sees it so; no secret emitted`, async () => {
      const answer = await whoami({ clientAuth });
      assert.ok('msg' in answer, JSON.stringify(answer));
      assert.equal(answer.msg.statusCode, 200);
      const payload = answer.msg.payload as Record<string, unknown>;
      assert.equal(payload.client_id, sandbox.demo.oauth2.clientId);
      assert.equal(payload.client_auth, clientAuth);
      assert.deepEqual(H.leaks(c.secrets(sandbox)), []);
    });
  }

  it('scope, audience and extra parameters reach the token endpoint', async () => {
    const answer = await whoami({ scope: 'read write', audience: sandbox.demo.oauth2.audience, extraParams: 'resource=line-7&site=Ulm' });
    assert.ok('msg' in answer, JSON.stringify(answer));
    assert.deepEqual(answer.msg.payload, {
      client_id: sandbox.demo.oauth2.clientId,
      client_auth: 'body',
      scope: 'read write',
      audience: sandbox.demo.oauth2.audience,
      params: { resource: 'line-7', site: 'Ulm' },
    });
  });

  for (const clientAuth of ['body', 'basic'] as const) {
    it(`a wrong secret (${clientAuth}): AUTH_REJECTED quoting the server's invalid_client and error_description; no secret emitted`, async () => {
      const wrong = { clientId: sandbox.demo.oauth2.clientId, clientSecret: 'wrong-o2-secret-0000' };
      const answer = await whoami({ clientAuth }, wrong);
      assert.ok('error' in answer, JSON.stringify(answer));
      assert.equal(answer.error.code, 'AUTH_REJECTED');
      assert.match(answer.error.message, /rejected the credentials \(401\)/);
      assert.match(answer.error.message, /the server said: "invalid_client: Client authentication failed"/);
      assert.deepEqual(H.leaks([sandbox.demo.oauth2.clientSecret, wrong.clientSecret]), []);
    });
  }

  it('a scope the server does not know: SCOPE_INVALID quoting invalid_scope', async () => {
    const answer = await whoami({ scope: 'admin' });
    assert.ok('error' in answer, JSON.stringify(answer));
    assert.equal(answer.error.code, 'SCOPE_INVALID');
    assert.match(answer.error.message, /\(400\).*invalid_scope: unknown scope: admin/);
  });

  it('extra parameters that would replace a field of the node: CONFIG_INVALID, nothing sent', async () => {
    const answer = await whoami({ extraParams: 'client_id=someone-else' });
    assert.ok('error' in answer, JSON.stringify(answer));
    assert.equal(answer.error.code, 'CONFIG_INVALID');
    assert.match(answer.error.message, /client_id/);
    assert.equal(sandbox.calls('oauth2.token'), 0);
  });

  it('a missing client secret: CREDENTIALS_MISSING', async () => {
    const answer = await whoami({}, { clientId: sandbox.demo.oauth2.clientId, clientSecret: '' });
    assert.ok('error' in answer, JSON.stringify(answer));
    assert.equal(answer.error.code, 'CREDENTIALS_MISSING');
  });
});

describe('OAuth 2.0 token request and answer (no network)', () => {
  const settings = oauth2.validateSettings({
    issuer: '',
    privateKey: '',
    keyId: '',
    signingAlg: '',
    tokenUrl: 'https://login.example/oauth2/token',
    apiUrl: 'https://api.example',
    clientId: 'client one',
    clientSecret: 's3cret:with&chars',
    scope: ' read ',
    audience: '',
    resource: '',
    clientAuth: 'basic',
    extraParams: '?resource=r1',
    grant: 'client_credentials',
    dpop: 'auto',
  });
  const answer = (status: number, body: unknown): HttpResponse => ({
    statusCode: status,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(body)),
    url: settings.tokenUrl,
  });

  it('HTTP Basic carries each part form-encoded (RFC 6749 2.3.1); the body carries no secret', async () => {
    const client = { clientId: settings.clientId, clientSecret: settings.clientSecret, keyId: '', signingAlg: '' };
    const request = await oauth2.buildTokenRequest(settings, client, oauth2.tokenEndpointOf(settings, client, undefined));
    const basic = Buffer.from(request.headers!.authorization!.replace(/^Basic /, ''), 'base64').toString('utf8');
    assert.equal(basic, 'client+one:s3cret%3Awith%26chars');
    assert.equal(request.body, 'grant_type=client_credentials&scope=read&resource=r1');
    assert.equal(request.retry, false);
    assert.ok(request.carriesSecret);
  });

  it('refuses a token that is neither bearer nor DPoP, a DPoP token without a proof sent, and one without access_token', () => {
    assert.throws(() => oauth2.readTokenResponse(answer(200, { access_token: 'abc', token_type: 'MAC' }), Date.now()), {
      code: ErrorCode.TOKEN_RESPONSE_INVALID,
    });
    assert.throws(() => oauth2.readTokenResponse(answer(200, { access_token: 'abc', token_type: 'DPoP' }), Date.now()), {
      code: 'DPOP_REJECTED',
      message: /set DPoP to auto or always/,
    });
    assert.throws(() => oauth2.readTokenResponse(answer(200, { token_type: 'Bearer' }), Date.now()), { code: ErrorCode.TOKEN_RESPONSE_INVALID });
    const token = oauth2.readTokenResponse(answer(200, { access_token: 'abc', token_type: 'bearer', expires_in: 60 }), 1000);
    assert.deepEqual(token.headers, { authorization: 'Bearer abc' });
    assert.equal(token.expiresAt, 61_000);
  });

  it('without expires_in or a JWT exp, the token lasts the default hour', () => {
    const token = oauth2.readTokenResponse(answer(200, { access_token: 'abc' }), 0);
    assert.equal(token.expiresAt, oauth2.DEFAULT_LIFETIME_S * 1000);
  });

  it('resource indicators (RFC 8707): one `resource` parameter per URI, after scope and audience', async () => {
    const withResources = oauth2.validateSettings({
      ...settings,
      extraParams: '',
      audience: 'aud-1',
      resource: ' https://api.example/line-7\n https://historian.example:8443/v2  https://api.example/line-7 ',
    });
    assert.equal(withResources.resource, 'https://api.example/line-7 https://historian.example:8443/v2');
    const client = { clientId: 'c', clientSecret: 's', keyId: '', signingAlg: '' };
    const request = await oauth2.buildTokenRequest(withResources, client, oauth2.tokenEndpointOf(withResources, client, undefined));
    assert.deepEqual(new URLSearchParams(request.body as string).getAll('resource'), ['https://api.example/line-7', 'https://historian.example:8443/v2']);
    assert.equal(new URLSearchParams(request.body as string).get('audience'), 'aud-1');
  });

  it('a resource that is not an absolute URI, or has a fragment, or set twice (field and extra parameters): CONFIG_INVALID saying what to write', () => {
    assert.throws(() => oauth2.validateSettings({ ...settings, resource: 'api/line-7' }), {
      code: ErrorCode.CONFIG_INVALID,
      message: /the resource "api\/line-7" is not an absolute URI: write the API's identifier/,
    });
    assert.throws(() => oauth2.validateSettings({ ...settings, resource: 'https://api.example/#items' }), {
      code: ErrorCode.CONFIG_INVALID,
      message: /has a fragment \(#…\), which RFC 8707 forbids: remove it/,
    });
    assert.throws(() => oauth2.validateSettings({ ...settings, resource: 'https://api.example/' }), {
      code: ErrorCode.CONFIG_INVALID,
      message: /the extra token parameters set resource, which the node sets itself/,
    });
  });

  it('refuses a client authentication it does not know', () => {
    assert.throws(() => oauth2.validateSettings({ ...settings, clientAuth: 'jwt' as 'body' }), { code: ErrorCode.CONFIG_INVALID });
  });
});

describe('OAuth 2.0 provider errors and discovery rules (no network)', () => {
  const answer = (status: number, body: unknown, url = 'https://as.example/token'): HttpResponse => ({
    statusCode: status,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(body)),
    url,
  });

  // oidc-provider answers neither of these to a client credentials request (errors.test.ts in test/conformance), so they are read here.
  it('unauthorized_client and invalid_grant: codes of their own, quoting the error_description as the server wrote it', () => {
    assert.throws(() => oauth2.readTokenResponse(answer(400, { error: 'unauthorized_client', error_description: 'Grant "client_credentials" off' }), 0), {
      code: 'CLIENT_UNAUTHORIZED',
      message: /client credentials grant \(400\).*the server said: "unauthorized_client: Grant "client_credentials" off"/,
    });
    assert.throws(() => oauth2.readTokenResponse(answer(400, { error: 'invalid_grant', error_description: 'audience unknown' }), 0), {
      code: 'GRANT_INVALID',
      message: /the server said: "invalid_grant: audience unknown"/,
    });
    assert.throws(
      () =>
        oauth2.readTokenResponse(
          answer(400, { error: 'invalid_target', error_description: 'no such API' }),
          0,
          'basic',
          '',
          'client credentials',
          'https://x.example/',
        ),
      {
        code: 'RESOURCE_INVALID',
        message: /refused the resource "https:\/\/x.example\/" \(400\).*the server said: "invalid_target: no such API"/,
      },
    );
    // Some servers answer invalid_client with 400 (RFC 6749 5.2 allows it): still a rejection of the credentials.
    assert.throws(() => oauth2.readTokenResponse(answer(400, { error: 'invalid_client' }), 0, 'private_key_jwt'), {
      code: ErrorCode.AUTH_REJECTED,
      message: /does not know this key/,
    });
  });

  it('metadata addresses: RFC 8414 3.1 inserts the well-known segment before the path; OIDC Discovery 4.1 appends it', () => {
    assert.deepEqual(discovery.metadataUrls('https://as.example'), [
      'https://as.example/.well-known/oauth-authorization-server',
      'https://as.example/.well-known/openid-configuration',
    ]);
    assert.deepEqual(discovery.metadataUrls('https://as.example/realms/line-7'), [
      'https://as.example/.well-known/oauth-authorization-server/realms/line-7',
      'https://as.example/realms/line-7/.well-known/openid-configuration',
    ]);
  });

  it('the issuer: https, or http on loopback only; no query or fragment', () => {
    assert.equal(discovery.checkIssuer(' https://as.example/t1 '), 'https://as.example/t1');
    for (const ok of ['http://127.0.0.1:8080', 'http://localhost:9000/realm', 'http://[::1]:3000']) assert.equal(discovery.checkIssuer(ok), ok);
    for (const bad of ['http://as.example', 'https://as.example/?tenant=1', 'https://as.example/#x', 'ftp://as.example']) {
      assert.throws(() => discovery.checkIssuer(bad), { code: ErrorCode.CONFIG_INVALID }, bad);
    }
  });

  it('metadata: its issuer identical to the configured one, endpoints https unless the issuer is on loopback; the mTLS alias read', () => {
    const issuer = 'https://as.example/t1';
    const meta = discovery.readMetadata(
      answer(200, {
        issuer,
        token_endpoint: 'https://as.example/t1/token',
        mtls_endpoint_aliases: { token_endpoint: 'https://mtls.as.example/t1/token' },
        token_endpoint_auth_methods_supported: ['private_key_jwt', 'tls_client_auth'],
      }),
      issuer,
    );
    assert.deepEqual(meta, {
      issuer,
      tokenEndpoint: 'https://as.example/t1/token',
      mtlsTokenEndpoint: 'https://mtls.as.example/t1/token',
      authMethods: ['private_key_jwt', 'tls_client_auth'],
      signingAlgs: [],
      dpopAlgs: [],
    });
    assert.deepEqual(discovery.readMetadata(answer(200, { issuer, token_endpoint: `${issuer}/token` }), issuer).authMethods, ['client_secret_basic']);
    assert.throws(() => discovery.readMetadata(answer(200, { issuer: `${issuer}/`, token_endpoint: `${issuer}/token` }), issuer), {
      code: ErrorCode.CONFIG_INVALID,
      message: /RFC 8414 3.3/,
    });
    assert.throws(() => discovery.readMetadata(answer(200, { issuer, token_endpoint: 'http://as.example/t1/token' }), issuer), {
      code: ErrorCode.CONFIG_INVALID,
      message: /plain http token_endpoint/,
    });
    assert.throws(
      () => discovery.readMetadata(answer(200, { issuer, token_endpoint: `${issuer}/token`, mtls_endpoint_aliases: { token_endpoint: 'http://x/t' } }), issuer),
      {
        code: ErrorCode.CONFIG_INVALID,
        message: /mtls_endpoint_aliases.token_endpoint/,
      },
    );
    const local = 'http://127.0.0.1:4000';
    assert.equal(discovery.readMetadata(answer(200, { issuer: local, token_endpoint: `${local}/token` }), local).tokenEndpoint, `${local}/token`);
  });
});
