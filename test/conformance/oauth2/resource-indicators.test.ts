import assert from 'node:assert/strict';
import { FlowHarness as H } from '../../helpers/flow.js';
import { countOutcomes, outcomeOf } from '../../helpers/outcome.js';
import { type AuthorizationServer, startAuthorizationServer } from './authorization-server.js';
import { credentialsOf, MODULES, oauth2Flow, secretsOf } from './flows.js';

/**
 * Resource indicators (RFC 8707) against oidc-provider with
 * `features.resourceIndicators`: a token asked for the resource server's
 * identifier is a JWT access token (RFC 9068) for that audience, which the
 * resource server verifies itself with the provider's JWKS; a resource the
 * provider does not know, or two in one client credentials request, is
 * `invalid_target` → RESOURCE_INVALID.
 */
describe('OAuth 2.0 conformance (oidc-provider): resource indicators (RFC 8707)', function () {
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

  async function deploy(config: Record<string, unknown>) {
    const f = oauth2Flow({
      config: { issuer: as.issuer, apiUrl: as.apiUrl, clientAuth: 'basic', scope: 'read', ...config },
      credentials: credentialsOf(as.clients.basic),
    });
    await H.load(MODULES, f.nodes, f.credentials);
    return f;
  }

  it('the resource is sent: a JWT access token with aud = the resource, verified by the resource server with the JWKS; 100 messages, one token', async () => {
    const f = await deploy({ resource: as.resource });
    const granted = as.granted(as.clients.basic.clientId);
    const jwt = as.api.jwt;
    const first = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    assert.equal(first.kind, 'output', JSON.stringify(first.error));
    const token = (first.msg.token as { value: string }).value;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    assert.equal(claims.aud, as.resource);
    assert.equal(claims.iss, as.issuer);
    assert.equal(claims.scope, 'read');
    const { outputs, errors } = await countOutcomes(f.ids, async () => {
      for (let i = 0; i < 100; i++) H.node(f.ids.request).receive({ payload: i });
    });
    assert.deepEqual(
      errors.map((e) => e.error),
      [],
    );
    assert.equal(outputs.length, 100);
    assert.ok(outputs.every((m) => m.statusCode === 200 && (m.payload as { aud: string }).aud === as.resource));
    assert.equal(as.api.jwt - jwt, 100);
    assert.equal(as.granted(as.clients.basic.clientId) - granted, 1);
    assert.deepEqual(H.leaks(secretsOf(as.clients.basic)), []);
  });

  it('without a resource, the token is opaque as before (the resource server asks the introspection)', async () => {
    const f = await deploy({});
    const jwt = as.api.jwt;
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
    assert.equal(outcome.msg.statusCode, 200);
    assert.equal(as.api.jwt, jwt);
  });

  it('a token for another resource (another aud): the resource server refuses it with 401; the node fetches a new one once, then the 401 is the output', async () => {
    const f = await deploy({ resource: `${as.resource}reports` });
    const refused = as.api.refused;
    const granted = as.granted(as.clients.basic.clientId);
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
    assert.equal(outcome.msg.statusCode, 401);
    assert.equal(as.api.refused - refused, 2);
    assert.equal(as.granted(as.clients.basic.clientId) - granted, 2);
  });

  it("a resource the provider does not know: invalid_target → RESOURCE_INVALID naming it, with the provider's words", async () => {
    const unknown = 'https://historian.example/api';
    const f = await deploy({ resource: unknown });
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'error');
    assert.equal(outcome.error!.code, 'RESOURCE_INVALID');
    assert.match(outcome.error!.message, /refused the resource "https:\/\/historian.example\/api" \(400\).*the server said: "invalid_target: /);
  });

  it('two resources in one client credentials request: oidc-provider takes one only (invalid_target) → RESOURCE_INVALID quoting it', async () => {
    const f = await deploy({ resource: `${as.resource} ${as.resource}reports` });
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'error');
    assert.equal(outcome.error!.code, 'RESOURCE_INVALID');
    assert.match(outcome.error!.message, /only a single resource indicator value is supported for this grant type/);
  });

  it('a resource that is no absolute URI: CONFIG_INVALID saying what to write; nothing sent', async () => {
    const before = as.hits('POST /token');
    const f = await deploy({ resource: 'line-7/api' });
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'error');
    assert.equal(outcome.error!.code, 'CONFIG_INVALID');
    assert.match(outcome.error!.message, /not an absolute URI: write the API's identifier as the authorization server knows it/);
    assert.equal(as.hits('POST /token'), before);
  });
});
