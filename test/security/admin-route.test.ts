import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H, uid, type FlowNode } from '../helpers/flow.js';
import { ALL_MODULES, assertNoLeaks, REDIRECTS, securitySuite, type EvilServer } from './harness.js';

/**
 * Attack: the Cisco EI tenant look-up (an admin route that logs in) used to
 * send a config node's stored password elsewhere: a cross-site HTML form
 * (form-encoded or text), or an editor user naming another server or user, or
 * a token endpoint that redirects. Each case: exactly one HTTP answer, the
 * evil server receives nothing, the password appears nowhere.
 */
describe('security: the tenant look-up admin route', function () {
  this.timeout(60_000);
  const suite = securitySuite('admin');
  let sandbox: Sandbox;
  let evil: EvilServer;
  before(() => {
    ({ sandbox, evil } = suite);
  });
  let configId: string;
  const ROUTE = '/iiot-auth/cisco-ei/tenants';

  beforeEach(async () => {
    // A deployed Cisco EI config node with its stored password, as the examples have.
    configId = uid('cei');
    const demo = sandbox.demo.ciscoEi;
    const flow: FlowNode[] = [{ id: configId, type: 'iiot-cisco-ei', server: sandbox.url, tenantId: demo.tenantId }];
    await H.load(ALL_MODULES, flow, { [configId]: { username: demo.username, password: demo.password } });
  });

  const password = () => sandbox.demo.ciscoEi.password;
  const username = () => sandbox.demo.ciscoEi.username;

  function assertNothingSent(context: string, body: unknown) {
    evil.assertUntouched(context);
    assert.equal(sandbox.calls('ciscoEi.token'), 0, `${context}: no login reached the platform`);
    assert.ok(!JSON.stringify(body).includes(password()), `${context}: the answer carries the password`);
    assertNoLeaks([password()], context);
  }

  describe('anything but JSON is refused with 415, nothing sent', () => {
    const bodies: [string, string, (evilUrl: string, id: string) => string][] = [
      [
        'a cross-site HTML form (form-encoded)',
        'application/x-www-form-urlencoded',
        (url, id) => new URLSearchParams({ id, server: url, username: 'admin', password: '__PWRD__' }).toString(),
      ],
      ['a form with enctype text/plain', 'text/plain', (url, id) => `{"id":"${id}","server":"${url}","username":"admin","password":"__PWRD__","x":"=y"}`],
      [
        'multipart form data',
        'multipart/form-data; boundary=xyz',
        (url, id) =>
          `--xyz\r\nContent-Disposition: form-data; name="id"\r\n\r\n${id}\r\n--xyz\r\nContent-Disposition: form-data; name="server"\r\n\r\n${url}\r\n--xyz--\r\n`,
      ],
      ['JSON sent as text/plain', 'text/plain;charset=UTF-8', (url, id) => JSON.stringify({ id, server: url, username: 'admin', password: '' })],
    ];
    for (const [name, type, body] of bodies) {
      it(name, async () => {
        const res = await H.request().post(ROUTE).set('content-type', type).send(body(evil.url, configId));
        assert.equal(res.status, 415, JSON.stringify(res.body));
        assert.equal(res.body.code, 'INPUT_INVALID');
        assertNothingSent(name, res.body);
      });
    }
  });

  describe('a stored password goes only to the saved server, as the saved user, over the saved TLS and proxy', () => {
    const cases: [string, (s: Sandbox, evilUrl: string) => Record<string, string>][] = [
      ['another server, unchanged password', (_s, url) => ({ server: url, username: username(), password: '__PWRD__' })],
      ['another server, empty password', (_s, url) => ({ server: url, username: username(), password: '' })],
      ['another server, same host other path', (s) => ({ server: `${s.url}/elsewhere`, username: username(), password: '__PWRD__' })],
      ['the saved server, another username', (s) => ({ server: s.url, username: 'attacker', password: '__PWRD__' })],
      ['the saved server and user, another proxy', (s) => ({ server: s.url, username: username(), password: '__PWRD__', proxy: 'some-proxy-node' })],
      ['the saved server and user, another TLS config', (s) => ({ server: s.url, username: username(), password: '__PWRD__', tls: 'some-tls-node' })],
    ];
    for (const [name, body] of cases) {
      it(`${name}: 400, the dialog must send the typed password`, async () => {
        const res = await H.request()
          .post(ROUTE)
          .send({ id: configId, ...body(sandbox, evil.url) });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.match(res.body.message, /stored password is used only with the saved server, username/);
        assertNothingSent(name, res.body);
      });
    }

    it('the saved server and user: the stored password is used (control case)', async () => {
      const res = await H.request()
        .post(ROUTE)
        .send({ id: configId, server: `${sandbox.url}/`, username: username(), password: '__PWRD__' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.tenants, sandbox.demo.ciscoEi.tenants);
      evil.assertUntouched('control');
      assertNoLeaks([password()], 'control');
    });
  });

  describe("the look-up's login and user endpoints redirecting: TOKEN_ENDPOINT_ERROR (502), nothing re-sent", () => {
    for (const endpoint of ['ciscoEi.token', 'ciscoEi.me'] as const) {
      for (const status of REDIRECTS) {
        it(`${endpoint}: ${status}`, async () => {
          sandbox.fault(endpoint, { kind: 'status', status, headers: { location: `${evil.url}/steal` } });
          const res = await H.request().post(ROUTE).send({ id: configId, server: sandbox.url, username: username(), password: '__PWRD__' });
          assert.equal(res.status, 502, JSON.stringify(res.body));
          assert.equal(res.body.code, 'TOKEN_ENDPOINT_ERROR');
          assert.ok(String(res.body.message).includes(new URL(evil.url).origin), res.body.message);
          evil.assertUntouched(`${endpoint} ${status}`);
          assert.ok(!JSON.stringify(res.body).includes(password()));
          assertNoLeaks([password()], `${endpoint} ${status}`);
        });
      }
    }
  });
});
