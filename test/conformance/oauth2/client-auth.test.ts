import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { FlowHarness as H } from '../../helpers/flow.js';
import { countOutcomes, outcomeOf } from '../../helpers/outcome.js';
import { waitFor } from '../../helpers/wait.js';
import { type AuthorizationServer, type ConformanceClient, fixture, startAuthorizationServer } from './authorization-server.js';
import { credentialsOf, MODULES, oauth2Flow, secretsOf } from './flows.js';

/**
 * The four client authentications of RFC 6749 2.3.1 and OpenID Connect Core 9
 * against oidc-provider, each through a real Node-RED runtime: the token is
 * obtained from the issuer alone (discovery), the API accepts it (the
 * resource server asks oidc-provider's introspection), 1,000 concurrent
 * messages share one token request, the token is renewed before it expires,
 * a token revoked at the provider is replaced on the 401, and no secret or
 * private key shows in anything the runtime emitted.
 */
interface MethodCase {
  name: string;
  client: (as: AuthorizationServer) => ConformanceClient;
  config: Record<string, unknown>;
  /** What the assertion oidc-provider saw must hold, for the JWT methods. */
  assertion?: (seen: AuthorizationServer['assertions'][number], as: AuthorizationServer) => void;
}

const tokenEndpoint = (as: AuthorizationServer) => `${as.issuer}/token`;
const rfc7523Claims = (seen: AuthorizationServer['assertions'][number], as: AuthorizationServer, clientId: string) => {
  assert.equal(seen.payload.iss, clientId);
  assert.equal(seen.payload.sub, clientId);
  assert.equal(seen.payload.aud, tokenEndpoint(as));
  assert.equal(typeof seen.payload.jti, 'string');
  const { iat, exp } = seen.payload as { iat: number; exp: number };
  assert.ok(exp - iat > 0 && exp - iat <= 60, `a short life: iat ${iat}, exp ${exp}`);
};

const CASES: MethodCase[] = [
  { name: 'client_secret_basic', client: (as) => as.clients.basic, config: { clientAuth: 'basic' } },
  { name: 'client_secret_post', client: (as) => as.clients.post, config: { clientAuth: 'body' } },
  {
    name: 'client_secret_jwt (HS256)',
    client: (as) => as.clients.jwt,
    config: { clientAuth: 'client_secret_jwt' },
    assertion: (seen, as) => {
      assert.equal(seen.header.alg, 'HS256');
      rfc7523Claims(seen, as, as.clients.jwt.clientId);
    },
  },
  {
    name: 'private_key_jwt (RSA key, RS256, kid)',
    client: (as) => as.clients.pkjwt,
    config: { clientAuth: 'private_key_jwt', keyId: 'rsa-1' },
    assertion: (seen, as) => {
      assert.deepEqual([seen.header.alg, seen.header.kid], ['RS256', 'rsa-1']);
      rfc7523Claims(seen, as, as.clients.pkjwt.clientId);
    },
  },
  {
    name: 'private_key_jwt (RSA key, PS256 chosen)',
    client: (as) => as.clients.pkjwt,
    config: { clientAuth: 'private_key_jwt', keyId: 'rsa-1', signingAlg: 'PS256' },
    assertion: (seen) => assert.equal(seen.header.alg, 'PS256'),
  },
  {
    name: 'private_key_jwt (EC P-256 key, ES256)',
    client: (as) => as.clients.pkjwtEc,
    config: { clientAuth: 'private_key_jwt', keyId: 'ec-1' },
    assertion: (seen) => assert.deepEqual([seen.header.alg, seen.header.kid], ['ES256', 'ec-1']),
  },
  {
    name: "private_key_jwt (key and certificate pasted: the certificate's x5t#S256, no kid)",
    client: (as) => as.clients.pkjwtCert,
    config: { clientAuth: 'private_key_jwt' },
    assertion: (seen) => {
      const der = new X509Certificate(fixture('oauth2-client.pem')).raw;
      assert.equal(seen.header['x5t#S256'], createHash('sha256').update(der).digest('base64url'));
      assert.equal(seen.header.kid, undefined);
    },
  },
];

describe('OAuth 2.0 conformance (oidc-provider): client authentication', function () {
  this.timeout(60_000);
  let as: AuthorizationServer;
  before(async () => {
    as = await startAuthorizationServer();
    await H.start();
  });
  afterEach(async () => {
    await H.unload();
    as.setTokenTtl(300);
  });
  after(async () => {
    await H.stop();
    await as?.stop();
  });

  for (const c of CASES) {
    describe(c.name, () => {
      it('from the issuer alone: 1,000 concurrent messages, one token request, every API call accepted; no secret emitted', async () => {
        const client = c.client(as);
        const granted = as.granted(client.clientId);
        const accepted = as.api.accepted;
        const seen = as.assertions.length;
        const f = oauth2Flow({ config: { issuer: as.issuer, apiUrl: as.apiUrl, scope: 'read', ...c.config }, credentials: credentialsOf(client) });
        await H.load(MODULES, f.nodes, f.credentials);
        const { outputs, errors } = await countOutcomes(f.ids, async () => {
          for (let i = 0; i < 1000; i++) H.node(f.ids.request).receive({ payload: i });
        });
        assert.deepEqual(
          errors.map((e) => e.error),
          [],
        );
        assert.equal(outputs.length, 1000);
        assert.ok(outputs.every((m) => m.statusCode === 200 && (m.payload as { client_id: string }).client_id === client.clientId));
        assert.equal(as.granted(client.clientId) - granted, 1, 'one token request for 1,000 messages');
        assert.equal(as.api.accepted - accepted, 1000);
        if (c.assertion) {
          assert.equal(as.assertions.length - seen, 1);
          c.assertion(as.assertions.at(-1)!, as);
        }
        assert.deepEqual(H.leaks(secretsOf(client)), []);
      });

      it('renews the token before it expires, and replaces a token revoked at the provider on the 401', async () => {
        const client = c.client(as);
        as.setTokenTtl(3);
        const f = oauth2Flow({ config: { issuer: as.issuer, apiUrl: as.apiUrl, ...c.config }, credentials: credentialsOf(client) });
        await H.load(MODULES, f.nodes, f.credentials);
        const token = async () => {
          const outcome = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
          assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
          return (outcome.msg.token as { value: string; expiresAt: string }).value;
        };
        const first = await token();
        const granted = as.granted(client.clientId);
        // Renewal: messages keep coming; before the 3 s are over, one of them gets a new token.
        const second = await waitFor(
          async () => {
            const value = await token();
            return value !== first ? value : undefined;
          },
          { timeoutMs: 10_000, intervalMs: 100, what: 'a renewed token' },
        );
        assert.equal(as.granted(client.clientId) - granted, 1);
        // 401 recovery: the provider revokes the token; the next API call gets a new one and succeeds.
        as.setTokenTtl(300);
        await as.revoke(second);
        const refused = as.api.refused;
        const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
        assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
        assert.equal(outcome.msg.statusCode, 200);
        assert.equal(as.api.refused - refused, 1, 'the revoked token was refused once');
        assert.equal(as.granted(client.clientId) - granted, 2);
        assert.notEqual(await token(), second);
        assert.deepEqual(H.leaks(secretsOf(client)), []);
      });
    });
  }
});
