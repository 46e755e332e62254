import assert from 'node:assert/strict';
import { FlowHarness as H } from '../../helpers/flow.js';
import { countOutcomes, outcomeOf } from '../../helpers/outcome.js';
import { Agent, request } from 'undici';
import { type AuthorizationServer, fixture, startAuthorizationServer } from './authorization-server.js';
import { credentialsOf, MODULES, oauth2Flow } from './flows.js';

/**
 * Mutual TLS client authentication (RFC 8705 2) against oidc-provider behind
 * https that asks for a client certificate: the certificate comes from
 * Node-RED's own TLS config node, as for any request of the config node. The
 * tokens are certificate-bound (RFC 8705 3), and the resource server takes
 * them only over that certificate, which the API calls present too.
 */
describe('OAuth 2.0 conformance (oidc-provider): mutual TLS', function () {
  this.timeout(60_000);
  let as: AuthorizationServer;
  before(async () => {
    as = await startAuthorizationServer({ tls: true, mountPath: '/mtls' });
    await H.start();
  });
  afterEach(() => H.unload());
  after(async () => {
    await H.stop();
    await as?.stop();
  });

  const cases = [
    { method: 'tls_client_auth', client: () => as.clients.tls, cert: { cert: 'oauth2-client.pem', key: 'oauth2-client.key' } },
    { method: 'self_signed_tls_client_auth', client: () => as.clients.selfSigned, cert: { cert: 'oauth2-self-signed.pem', key: 'oauth2-self-signed.key' } },
  ] as const;

  for (const c of cases) {
    it(`${c.method}: the TLS config node's certificate authenticates; 200 concurrent messages, one token request, all accepted with the token bound to it`, async () => {
      const client = c.client();
      const bound = as.api.bound;
      const f = oauth2Flow({
        config: { issuer: as.issuer, apiUrl: as.apiUrl, clientAuth: c.method },
        credentials: credentialsOf(client),
        clientCertificate: c.cert,
      });
      await H.load(MODULES, f.nodes, f.credentials);
      const { outputs, errors } = await countOutcomes(f.ids, async () => {
        for (let i = 0; i < 200; i++) H.node(f.ids.request).receive({});
      });
      assert.deepEqual(
        errors.map((e) => e.error),
        [],
      );
      assert.ok(outputs.length === 200 && outputs.every((m) => (m.payload as { client_id: string }).client_id === client.clientId));
      assert.equal(as.granted(client.clientId), 1);
      // RFC 8705 3: the token names the certificate (cnf x5t#S256), and every call presented that certificate.
      assert.equal(as.api.bound - bound, 200);
      // The same token without the certificate: refused, so the binding is checked.
      const token = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
      const value = (token.msg.token as { value: string }).value;
      const dispatcher = new Agent({ connect: { ca: fixture('oauth2-ca.pem') } });
      try {
        const answer = await request(`${as.apiUrl}/items`, { dispatcher, headers: { authorization: `Bearer ${value}` } });
        await answer.body.dump();
        assert.equal(answer.statusCode, 401);
      } finally {
        await dispatcher.close();
      }
    });
  }

  it("tls_client_auth with another client's certificate: AUTH_REJECTED saying to register it", async () => {
    const f = oauth2Flow({
      config: { issuer: as.issuer, apiUrl: as.apiUrl, clientAuth: 'tls_client_auth' },
      credentials: credentialsOf(as.clients.tls),
      clientCertificate: { cert: 'oauth2-self-signed.pem', key: 'oauth2-self-signed.key' },
    });
    await H.load(MODULES, f.nodes, f.credentials);
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'error');
    assert.equal(outcome.error?.code, 'AUTH_REJECTED');
    assert.match(outcome.error?.message ?? '', /does not accept the TLS config node's client certificate.*invalid_client/);
  });
});
