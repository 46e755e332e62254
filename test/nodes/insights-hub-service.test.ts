import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/core/errors.js';
import type { HttpResponse } from '../../src/core/http/index.js';
import * as service from '../../src/platforms/insights-hub-service.js';

/**
 * What the Insights Hub service credentials platform does beyond the matrix
 * every platform passes (test/nodes/platforms.test.ts) and the comparison
 * with the SDK (test/compat/service-credentials.test.ts): its settings, and
 * that nothing but a tenant name gets into the token endpoint's host.
 */
describe('Insights Hub service credentials (no network)', () => {
  const settings = { gateway: 'https://gateway.eu1.mindsphere.io', tenant: 'acme', clientId: 'acme-svc-1', clientSecret: 's3cret+/=:x' };

  it('the token request: POST <tenant>.piam/oauth/token, grant_type=client_credentials, HTTP Basic of the plain id:secret (as the SDK)', () => {
    const request = service.buildTokenRequest(service.validateSettings(settings));
    assert.equal(request.method, 'POST');
    assert.equal(request.url, 'https://acme.piam.eu1.mindsphere.io/oauth/token');
    assert.equal(request.body, 'grant_type=client_credentials');
    assert.equal(request.headers!['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(Buffer.from(request.headers!.authorization!.replace(/^Basic /, ''), 'base64').toString('utf8'), 'acme-svc-1:s3cret+/=:x');
    assert.equal(request.retry, false);
    assert.ok(request.carriesSecret);
  });

  it('a region alone is the gateway on mindsphere.io; the tenant is lower-cased', () => {
    const checked = service.validateSettings({ ...settings, gateway: ' EU2 ', tenant: 'Acme' });
    assert.equal(checked.gateway, 'https://gateway.eu2.mindsphere.io');
    assert.equal(service.tokenUrlOf(checked), 'https://acme.piam.eu2.mindsphere.io/oauth/token');
  });

  it('a tenant that is not one DNS label never reaches the host: CONFIG_INVALID saying what to enter', () => {
    for (const tenant of ['evil.example', 'a/b', 'x@evil', 'acme.piam.evil.example#', '-acme']) {
      assert.throws(() => service.validateSettings({ ...settings, tenant }), { code: ErrorCode.CONFIG_INVALID, message: /is not a tenant name/ }, tenant);
    }
    assert.throws(() => service.validateSettings({ ...settings, tenant: ' ' }), { code: ErrorCode.CONFIG_INVALID, message: /lacks the tenant/ });
  });

  it('missing credentials: CREDENTIALS_MISSING naming them; a gateway that is no URL: CONFIG_INVALID', () => {
    assert.throws(() => service.validateSettings({ ...settings, clientId: '', clientSecret: '' }), {
      code: ErrorCode.CREDENTIALS_MISSING,
      message: /lacks the client id and client secret/,
    });
    assert.throws(() => service.validateSettings({ ...settings, gateway: 'gateway.eu1' }), { code: ErrorCode.CONFIG_INVALID });
  });

  it('the answer: a bearer token; 401 is AUTH_REJECTED saying to check credentials and tenant, quoting the server', () => {
    const answer = (status: number, body: unknown): HttpResponse => ({
      statusCode: status,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(body)),
      url: 'https://acme.piam.eu1.mindsphere.io/oauth/token',
    });
    const token = service.readTokenResponse(answer(200, { access_token: 'abc', token_type: 'bearer', expires_in: 1799 }), 0);
    assert.deepEqual(token.headers, { authorization: 'Bearer abc' });
    assert.equal(token.expiresAt, 1_799_000);
    assert.throws(() => service.readTokenResponse(answer(401, { error: 'unauthorized', error_description: 'Bad credentials' }), 0), {
      code: ErrorCode.AUTH_REJECTED,
      message: /check them and the tenant.*Bad credentials/,
    });
  });
});
