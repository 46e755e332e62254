import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { FlowHarness as H } from '../../helpers/flow.js';
import { outcomeOf } from '../../helpers/outcome.js';
import { startHttpsServer, type TestServer } from '../../helpers/servers.js';
import { type AuthorizationServer, fixture, startAuthorizationServer } from './authorization-server.js';
import { credentialsOf, MODULES, type OAuth2FlowOptions, oauth2Flow, secretsOf } from './flows.js';

/**
 * Discovery against oidc-provider: where the metadata is looked for (RFC
 * 8414 3.1 for an issuer with a path, then OpenID Connect Discovery's form),
 * that it is fetched once per config node and again after a failure, and
 * what stops a token request before it is sent: an issuer that is not
 * identical (RFC 8414 3.3), a plain http endpoint of an issuer that is not on
 * this machine.
 */
describe('OAuth 2.0 conformance (oidc-provider): discovery', function () {
  this.timeout(60_000);
  const servers: AuthorizationServer[] = [];
  const start = async (options: Parameters<typeof startAuthorizationServer>[0]) => {
    const as = await startAuthorizationServer(options);
    servers.push(as);
    return as;
  };
  before(() => H.start());
  afterEach(() => H.unload());
  after(async () => {
    await H.stop();
    for (const as of servers) await as.stop();
  });

  /** Loads a flow for client_secret_basic with `config`, sends one message into the request node, and returns its outcome. */
  async function call(as: AuthorizationServer, config: Record<string, unknown>, extra: Partial<OAuth2FlowOptions> = {}) {
    const f = oauth2Flow({ config: { apiUrl: as.apiUrl, clientAuth: 'basic', ...config }, credentials: credentialsOf(as.clients.basic), ...extra });
    await H.load(MODULES, f.nodes, f.credentials);
    return { f, outcome: await outcomeOf(f.ids, () => H.node(f.ids.request).receive({})) };
  }

  it('an issuer at the origin: its RFC 8414 metadata, /.well-known/oauth-authorization-server', async () => {
    const as = await start({});
    const { outcome } = await call(as, { issuer: as.issuer });
    assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
    assert.equal(outcome.msg.statusCode, 200);
    assert.equal(as.hits('GET /.well-known/oauth-authorization-server'), 1);
    assert.equal(as.hits('GET /.well-known/openid-configuration'), 0);
    assert.equal(as.granted(as.clients.basic.clientId), 1);
  });

  it('an issuer with a path: the well-known segment goes between host and path (RFC 8414 3.1), and the metadata is fetched once', async () => {
    const as = await start({ mountPath: '/tenant-a', rfc8414: true });
    const { f, outcome } = await call(as, { issuer: as.issuer });
    assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
    assert.equal(as.hits('GET /.well-known/oauth-authorization-server/tenant-a'), 1);
    assert.equal(as.hits('GET /tenant-a/.well-known/openid-configuration'), 0);
    // A second token (the first revoked): no second metadata request.
    const token = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    await as.revoke((token.msg.token as { value: string }).value);
    const again = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(again.kind, 'output', JSON.stringify(again.error));
    assert.equal(as.granted(as.clients.basic.clientId), 2);
    assert.equal(as.hits('GET /.well-known/oauth-authorization-server/tenant-a'), 1);
  });

  it('an issuer with a path, without RFC 8414 metadata: the OpenID Connect form, <issuer>/.well-known/openid-configuration', async () => {
    const as = await start({ mountPath: '/tenant-b' });
    const { outcome } = await call(as, { issuer: as.issuer, scope: 'read' });
    assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
    assert.equal((outcome.msg.payload as { scope: string }).scope, 'read');
    assert.equal(as.hits('GET /.well-known/oauth-authorization-server/tenant-b'), 1);
    assert.equal(as.hits('GET /tenant-b/.well-known/openid-configuration'), 1);
  });

  it('metadata briefly unavailable (503): TOKEN_ENDPOINT_ERROR, and fetched again once the back-off is over', async () => {
    const as = await start({});
    as.failMetadata(1);
    const { f, outcome } = await call(as, { issuer: as.issuer });
    assert.equal(outcome.kind, 'error');
    assert.equal(outcome.error?.code, 'TOKEN_ENDPOINT_ERROR');
    assert.match(outcome.error?.message ?? '', /metadata at .* answered 503/);
    assert.equal(as.hits('POST /token'), 0);
    const failed = as.hits('GET /.well-known/oauth-authorization-server');
    assert.equal(failed, 1, 'no retry besides the back-off');
    await H.backoffOver(f.ids.config);
    const again = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(again.kind, 'output', JSON.stringify(again.error));
    assert.equal(as.hits('GET /.well-known/oauth-authorization-server'), failed + 1);
  });

  it('an explicit token URL: no metadata asked for', async () => {
    const as = await start({});
    const { outcome } = await call(as, { tokenUrl: `${as.issuer}/token` });
    assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
    assert.equal(as.hits('GET /.well-known/oauth-authorization-server') + as.hits('GET /.well-known/openid-configuration'), 0);
  });

  it("an issuer that differs from the metadata's (a trailing slash): CONFIG_INVALID naming both, no token request sent", async () => {
    const as = await start({});
    const { outcome } = await call(as, { issuer: `${as.issuer}/` });
    assert.equal(outcome.kind, 'error');
    assert.equal(outcome.error?.code, 'CONFIG_INVALID');
    assert.ok(outcome.error?.message.includes(`names "${as.issuer}", not the configured issuer "${as.issuer}/"`), outcome.error?.message);
    assert.equal(as.hits('POST /token'), 0);
    assert.deepEqual(H.leaks(secretsOf(as.clients.basic)), []);
  });

  describe('an issuer that is not on this machine (as.iiot.test, reached through a proxy)', () => {
    let metadataServer: TestServer;
    let proxy: http.Server;
    let proxyUrl: string;
    let tokenEndpoint = '';
    const tokenRequests: string[] = [];
    before(async () => {
      metadataServer = await startHttpsServer({ key: fixture('oauth2-server.key'), cert: fixture('oauth2-server.pem') }, (req, res) => {
        const issuer = `https://as.iiot.test:${metadataServer.port}`;
        if (req.method === 'GET' && req.url === '/.well-known/oauth-authorization-server') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer, token_endpoint: tokenEndpoint || `${issuer}/token` }));
        } else if (req.method === 'POST' && req.url === '/token') {
          tokenRequests.push(req.url);
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ access_token: 'remote-token-123', token_type: 'Bearer', expires_in: 60 }));
        } else res.writeHead(404).end();
      });
      // A forward proxy that sends every CONNECT to the metadata server: the name needs no DNS.
      proxy = http.createServer((_req, res) => res.writeHead(405).end());
      proxy.on('connect', (_req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
        const upstream = net.connect(metadataServer.port, '127.0.0.1', () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          upstream.write(head);
          upstream.pipe(client);
          client.pipe(upstream);
        });
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
      });
      proxy.listen(0, '127.0.0.1');
      await new Promise((resolve) => proxy.once('listening', resolve));
      proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    });
    after(async () => {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
      await metadataServer.stop();
    });

    async function remote() {
      const issuer = `https://as.iiot.test:${metadataServer.port}`;
      const f = oauth2Flow({
        config: { issuer, apiUrl: `${issuer}/api`, clientAuth: 'body' },
        credentials: { clientId: 'remote-client', clientSecret: 'remote-client-secret-0123456789' },
        trustConformanceCa: true,
        proxyUrl,
      });
      await H.load(MODULES, f.nodes, f.credentials);
      return outcomeOf(f.ids, () => H.node(f.ids.token).receive({}));
    }

    it('its https token endpoint is used (the path works)', async () => {
      tokenEndpoint = '';
      const outcome = await remote();
      assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
      assert.equal((outcome.msg.token as { value: string }).value, 'remote-token-123');
    });

    it('a plain http token endpoint: CONFIG_INVALID saying so, and nothing sent', async () => {
      tokenEndpoint = `http://as.iiot.test:${metadataServer.port}/token`;
      const before = tokenRequests.length;
      const outcome = await remote();
      assert.equal(outcome.kind, 'error');
      assert.equal(outcome.error?.code, 'CONFIG_INVALID');
      assert.match(outcome.error?.message ?? '', /plain http token_endpoint .*the issuer is not on this machine: nothing was sent/);
      assert.equal(tokenRequests.length, before);
      assert.deepEqual(H.leaks(['remote-client-secret-0123456789']), []);
    });
  });
});
