import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/core/errors.js';
import type { HttpResponse } from '../../src/core/http/index.js';
import * as ciscoEi from '../../src/platforms/cisco-ei.js';
import * as dataTrails from '../../src/platforms/datatrails.js';
import * as insightsHub from '../../src/platforms/insights-hub-app.js';
import * as mbp from '../../src/platforms/mbp.js';

/** The platforms' response validators, without a network: each bad answer gets an error naming what is wrong. */
function response(statusCode: number, body: unknown, headers: Record<string, string | string[]> = {}): HttpResponse {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return { statusCode, headers, body: Buffer.from(text), url: 'https://platform.example/token?x=1' };
}

const NOW = 1_700_000_000_000;

describe('token response validators', () => {
  const bearerReaders: [string, (res: HttpResponse) => { value: string; expiresAt: number; headers: Record<string, string> }][] = [
    ['Insights Hub app', (res) => insightsHub.readTokenResponse(res, NOW)],
    ['Cisco EI', (res) => ciscoEi.readTokenResponse(res, NOW, 'tenant-1')],
    ['DataTrails', (res) => dataTrails.readTokenResponse(res, NOW)],
  ];

  for (const [name, read] of bearerReaders) {
    describe(name, () => {
      it('reads access_token and expires_in', () => {
        const token = read(response(200, { access_token: 'abc.def.ghi', expires_in: 300, token_type: 'Bearer' }));
        assert.equal(token.value, 'abc.def.ghi');
        assert.equal(token.expiresAt, NOW + 300_000);
        assert.equal(token.headers.authorization, 'Bearer abc.def.ghi');
      });

      it('names a missing or empty access_token', () => {
        for (const body of [{ expires_in: 300 }, { access_token: '', expires_in: 300 }, { access_token: 42 }]) {
          assert.throws(() => read(response(200, body)), { code: ErrorCode.TOKEN_RESPONSE_INVALID, message: /"access_token"/ });
        }
      });

      it('names an invalid expires_in', () => {
        assert.throws(() => read(response(200, { access_token: 'a', expires_in: -5 })), { message: /invalid "expires_in"/ });
      });

      it('says when the body is not JSON, without quoting it or the query string', () => {
        assert.throws(
          () => read(response(200, '<html>Sign in here</html>')),
          (err: Error & { code: string }) => {
            assert.equal(err.code, ErrorCode.TOKEN_RESPONSE_INVALID);
            assert.ok(!err.message.includes('Sign in') && !err.message.includes('x=1'));
            return true;
          },
        );
      });

      it("maps 401 to AUTH_REJECTED, 5xx and 429 to TOKEN_ENDPOINT_ERROR with the server's wait", () => {
        assert.throws(() => read(response(401, {})), { code: ErrorCode.AUTH_REJECTED, statusCode: 401 });
        assert.throws(() => read(response(502, {})), { code: ErrorCode.TOKEN_ENDPOINT_ERROR, statusCode: 502 });
        assert.throws(() => read(response(429, {}, { 'retry-after': '7' })), { code: ErrorCode.TOKEN_ENDPOINT_ERROR, retryAfterMs: 7000 });
      });
    });
  }

  it('Insights Hub falls back on the JWT exp when expires_in is missing', () => {
    const exp = NOW / 1000 + 1800;
    const jwt = `e30.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;
    assert.equal(insightsHub.readTokenResponse(response(200, { access_token: jwt }), NOW).expiresAt, exp * 1000);
  });

  it('Cisco EI adds the tenant header; DataTrails defaults to an hour', () => {
    assert.equal(ciscoEi.readTokenResponse(response(200, { access_token: 'a' }), NOW, 't-9').headers['x-tenant-id'], 't-9');
    assert.equal(ciscoEi.readTokenResponse(response(200, { access_token: 'a' }), NOW, 't-9').expiresAt, NOW + 300_000);
    assert.equal(dataTrails.readTokenResponse(response(200, { access_token: 'a' }), NOW).expiresAt, NOW + 3600_000);
  });

  it('Cisco EI tenants come from roles, once each', () => {
    const roles = [
      { tenant_id: 't1', tenant_name: 'One', role_name: 'admin' },
      { tenant_id: 't1', tenant_name: 'One', role_name: 'viewer' },
      { tenant_id: 't2', tenant_name: 'Two' },
    ];
    assert.deepEqual(ciscoEi.readTenantsResponse(response(200, { roles })), [
      { id: 't1', name: 'One' },
      { id: 't2', name: 'Two' },
    ]);
    assert.throws(() => ciscoEi.readTenantsResponse(response(200, {})), /without "roles"/);
  });
});

describe('MBP login validator', () => {
  const user = { id: '1', username: 'ada', firstName: 'Ada', lastName: 'Lovelace' };

  it('reads the session cookie, its Max-Age (capped at 7 days) and builds the access-request header', () => {
    const token = mbp.readLoginResponse(response(200, user, { 'set-cookie': ['other=1', 'user_session=S1; Path=/; Max-Age=3600; HttpOnly'] }), NOW);
    assert.equal(token.type, 'session');
    assert.equal(token.value, 'S1');
    assert.equal(token.expiresAt, NOW + 3600_000);
    assert.deepEqual(token.headers, {
      cookie: 'user_session=S1',
      'x-mbp-access-request': 'requesting-entity-firstname=Ada;;requesting-entity-lastname=Lovelace;;requesting-entity-username=ada',
    });
    const long = mbp.readLoginResponse(response(200, user, { 'set-cookie': 'user_session=S2; Max-Age=99999999' }), NOW);
    assert.equal(long.expiresAt, NOW + 7 * 24 * 3600_000);
  });

  it('says what is wrong: no cookie, unknown user, wrong password, redirect', () => {
    assert.throws(() => mbp.readLoginResponse(response(200, user), NOW), /set no user_session cookie/);
    assert.throws(() => mbp.readLoginResponse(response(404, {}), NOW), { code: ErrorCode.AUTH_REJECTED, message: /does not know this user/ });
    assert.throws(() => mbp.readLoginResponse(response(403, {}), NOW), { code: ErrorCode.AUTH_REJECTED, message: /password is wrong/ });
    assert.throws(() => mbp.readLoginResponse(response(302, ''), NOW), /context path/);
  });

  it("refuses names MBP's header parser cannot take (ACAccessRequest.valueOf), leaves out names the profile lacks", () => {
    for (const bad of [{ firstName: 'A=B' }, { lastName: 'x;;y' }, { firstName: 42 }]) {
      assert.throws(() => mbp.accessRequestHeader({ ...user, ...bad }), { code: ErrorCode.CONFIG_INVALID });
    }
    for (const missing of [{ firstName: undefined }, { firstName: null }, { firstName: '' }]) {
      assert.equal(mbp.accessRequestHeader({ ...user, ...missing }), 'requesting-entity-lastname=Lovelace;;requesting-entity-username=ada');
    }
    assert.throws(() => mbp.accessRequestHeader({ ...user, username: '' }), { code: ErrorCode.TOKEN_RESPONSE_INVALID });
  });

  it("tells MBP's 401 with its error body (a missing permission) from an empty 401 (a lost session)", () => {
    const denied = response(401, {
      status: 'UNAUTHORIZED',
      statusCode: 401,
      timestamp: '04.04.2022 12:00:12',
      message: "Missing permission 'READ' for Entity with id '7'.",
      detailMessages: {},
    });
    assert.equal(mbp.refusesPermission(denied), true);
    assert.equal(mbp.refusesPermission(response(401, '')), false);
    assert.equal(mbp.refusesPermission(response(401, '<html>proxy login</html>')), false, "not MBP's body: a lost session, as before");
  });
});
