import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { FlowHarness as H } from '../../helpers/flow.js';
import { outcomeOf } from '../../helpers/outcome.js';
import { type AuthorizationServer, startAuthorizationServer } from './authorization-server.js';
import { credentialsOf, MODULES, oauth2Flow, secretsOf } from './flows.js';

/**
 * oidc-provider's refusals, each with the code a flow can test and the
 * provider's `error_description` as it wrote it; and the settings that stop
 * a request before anything is sent.
 */
describe('OAuth 2.0 conformance (oidc-provider): errors', function () {
  this.timeout(60_000);
  let as: AuthorizationServer;
  before(async () => {
    as = await startAuthorizationServer();
    await H.start();
  });
  afterEach(() => H.unload());
  after(async () => {
    await H.stop();
    await as?.stop();
  });

  async function failure(config: Record<string, unknown>, credentials: Record<string, string>) {
    const f = oauth2Flow({ config: { issuer: as.issuer, apiUrl: as.apiUrl, ...config }, credentials });
    await H.load(MODULES, f.nodes, f.credentials);
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'error', `expected an error, got status ${String(outcome.msg.statusCode)}`);
    return outcome.error!;
  }

  for (const [clientAuth, key] of [
    ['basic', 'basic'],
    ['body', 'post'],
    ['client_secret_jwt', 'jwt'],
  ] as const) {
    it(`invalid_client for a wrong secret (${clientAuth}): AUTH_REJECTED with what to check and the provider's words; no secret emitted`, async () => {
      const wrong = 'wrong-conformance-secret-0123456789';
      const error = await failure({ clientAuth }, { clientId: as.clients[key].clientId, clientSecret: wrong });
      assert.equal(error.code, 'AUTH_REJECTED');
      assert.match(error.message, /rejected the credentials \(401\): the client id or secret is wrong/);
      assert.match(error.message, /the server said: "invalid_client: client authentication failed"/);
      assert.deepEqual(H.leaks([wrong, ...secretsOf(as.clients[key])]), []);
    });
  }

  it('invalid_client for a key the provider does not know (private_key_jwt): AUTH_REJECTED naming the key; no key emitted', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const error = await failure({ clientAuth: 'private_key_jwt' }, { clientId: as.clients.pkjwt.clientId, privateKey: other });
    assert.equal(error.code, 'AUTH_REJECTED');
    assert.match(error.message, /does not know this key for the client/);
    assert.deepEqual(H.leaks(secretsOf({ privateKey: other })), []);
  });

  // RFC 6749 5.2 names unauthorized_client for this; oidc-provider 9 answers invalid_request (lib/actions/token.js).
  it('a client without the client credentials grant: oidc-provider answers invalid_request, TOKEN_ENDPOINT_ERROR quoting it', async () => {
    const error = await failure({ clientAuth: 'basic' }, credentialsOf(as.clients.noGrant));
    assert.equal(error.code, 'TOKEN_ENDPOINT_ERROR');
    assert.match(error.message, /refused the token request \(400\).*the server said: "invalid_request: requested grant type is not allowed for this client"/);
    assert.equal(as.granted(as.clients.noGrant.clientId), 0);
  });

  it('invalid_scope for a scope the client may not have: SCOPE_INVALID naming it, quoting the provider', async () => {
    const error = await failure({ clientAuth: 'basic', scope: 'read write' }, credentialsOf(as.clients.basic));
    assert.equal(error.code, 'SCOPE_INVALID');
    assert.match(error.message, /refused the scope "read write" \(400\).*the server said: "invalid_scope: requested scope is not allowed"/);
  });

  it('private_key_jwt asks for no secret, but for the key: CREDENTIALS_MISSING naming it; nothing sent', async () => {
    const before = as.hits('POST /token');
    const error = await failure({ clientAuth: 'private_key_jwt' }, { clientId: as.clients.pkjwt.clientId });
    assert.equal(error.code, 'CREDENTIALS_MISSING');
    assert.match(error.message, /lacks the private key/);
    assert.doesNotMatch(error.message, /secret/);
    assert.equal(as.hits('POST /token'), before);
  });

  it('a private key that is no key: CONFIG_INVALID without quoting it', async () => {
    const notAKey = '-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5LWF0LWFsbC0wMTIzNDU2Nzg5\n-----END PRIVATE KEY-----\n';
    const error = await failure({ clientAuth: 'private_key_jwt' }, { clientId: as.clients.pkjwt.clientId, privateKey: notAKey });
    assert.equal(error.code, 'CONFIG_INVALID');
    assert.match(error.message, /not an unencrypted PEM private key/);
    assert.deepEqual(H.leaks(['bm90LWEta2V5LWF0LWFsbC0wMTIzNDU2Nzg5']), []);
  });

  it('a signing algorithm that does not fit the key (ES256 for RSA): CONFIG_INVALID; nothing sent', async () => {
    const before = as.hits('POST /token');
    const error = await failure({ clientAuth: 'private_key_jwt', signingAlg: 'ES256' }, credentialsOf(as.clients.pkjwt));
    assert.equal(error.code, 'CONFIG_INVALID');
    assert.match(error.message, /ES256 does not fit the key: choose RS256 or PS256/);
    assert.equal(as.hits('POST /token'), before);
  });

  it('mutual TLS without a TLS config node: CONFIG_INVALID saying to choose one', async () => {
    const error = await failure({ clientAuth: 'tls_client_auth' }, credentialsOf(as.clients.tls));
    assert.equal(error.code, 'CONFIG_INVALID');
    assert.match(error.message, /needs the client certificate of a TLS config node/);
  });

  it('"auto" picks from the metadata: a private key gives private_key_jwt, a secret client_secret_basic', async () => {
    for (const [client, config] of [
      [as.clients.pkjwt, { keyId: 'rsa-1' }],
      [as.clients.basic, {}],
    ] as const) {
      const f = oauth2Flow({ config: { issuer: as.issuer, apiUrl: as.apiUrl, clientAuth: 'auto', ...config }, credentials: credentialsOf(client) });
      await H.load(MODULES, f.nodes, f.credentials);
      const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
      assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
      assert.equal((outcome.msg.payload as { client_id: string }).client_id, client.clientId);
      await H.unload();
    }
  });
});
