import assert from 'node:assert/strict';
import ciscoEiNode from '../../src/nodes/iiot-cisco-ei.js';
import dataTrailsNode from '../../src/nodes/iiot-datatrails.js';
import mbpNode from '../../src/nodes/iiot-mbp.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { startHttpServer } from '../helpers/servers.js';
import { PLATFORM_CASES, platformFlow, type PlatformCase } from '../helpers/platform-flows.js';

const modules = [ciscoEiNode, dataTrailsNode, mbpNode, tokenNode, requestNode];
const caseOf = (platform: PlatformCase['platform']) => PLATFORM_CASES.find((c) => c.platform === platform)!;

/** What one platform does differently from the others. */
describe('platform specifics', function () {
  this.timeout(30_000);
  const env = withSandboxAndRuntime();
  let sandbox: Sandbox;
  before(() => {
    sandbox = env.sandbox;
  });
  async function load(platform: PlatformCase['platform'], options: Parameters<typeof platformFlow>[2] = {}) {
    const f = platformFlow(caseOf(platform), sandbox, options);
    await H.load(modules, f.nodes, f.credentials);
    return f;
  }

  describe('Cisco EI', () => {
    it('sends x-tenant-id with every request, and get token puts it on msg.headers', async () => {
      const tenant = sandbox.demo.ciscoEi.tenants[1]!.id;
      const f = await load('cisco-ei', { config: { tenantId: tenant }, request: { url: '/__sandbox/echo' } });
      const out = H.collect(f.ids.out, 11);
      H.node(f.ids.token).receive({});
      for (let i = 0; i < 10; i++) H.node(f.ids.request).receive({});
      const msgs = await out;
      const tokenMsg = msgs.find((m) => m.token)!;
      assert.equal((tokenMsg.headers as Record<string, string>)['x-tenant-id'], tenant);
      for (const msg of msgs.filter((m) => 'statusCode' in m)) {
        const echo = msg.payload as { tenant: string; authenticated: string };
        assert.equal(echo.tenant, tenant);
        assert.equal(echo.authenticated, 'cisco-ei');
      }
    });

    it('a tenant the user does not belong to is refused by the API and passed on as its status', async () => {
      const f = await load('cisco-ei', { config: { tenantId: '00000000-0000-0000-0000-000000000000' } });
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({});
      const [msg] = await out;
      assert.ok(msg!.statusCode === 401 || msg!.statusCode === 403, String(msg!.statusCode));
    });

    it("the tenant look-up endpoint lists the user's tenants", async () => {
      const f = await load('cisco-ei');
      void f;
      const demo = sandbox.demo.ciscoEi;
      const res = await H.request()
        .post('/iiot-auth/cisco-ei/tenants')
        .send({ server: sandbox.url, username: demo.username, password: demo.password })
        .expect(200);
      assert.deepEqual(res.body.tenants, demo.tenants);
    });
  });

  describe('DataTrails', () => {
    it('retries a 429 from the API after Archivist-Rate-Limit-Reset or Retry-After, bounded', async () => {
      const f = await load('datatrails');
      sandbox.fault('dataTrails.assets', { kind: 'status', status: 429, headers: { 'archivist-rate-limit-reset': '0' }, times: 2 });
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({});
      assert.equal((await out)[0]!.statusCode, 200);
      assert.equal(sandbox.calls('dataTrails.assets'), 3);

      sandbox.resetCalls();
      sandbox.fault('dataTrails.assets', { kind: 'status', status: 429, headers: { 'retry-after': '0' } });
      const limited = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({});
      assert.equal((await limited)[0]!.statusCode, 429, 'after the bounded retries, the 429 is the output');
      assert.equal(sandbox.calls('dataTrails.assets'), 4, 'one try and three retries');
    });

    it("retries the sandbox's own 429 (rateLimited fault) after its Archivist-Rate-Limit-Reset; a longer wait is the output", async () => {
      const f = await load('datatrails');
      const warm = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({}); // the token first: the wait measured below is the retry's alone
      assert.equal((await warm)[0]!.statusCode, 200);
      sandbox.resetCalls();
      sandbox.fault('dataTrails.assets', { kind: 'rateLimited', resetSeconds: 1, times: 1 });
      const started = Date.now();
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({});
      assert.equal((await out)[0]!.statusCode, 200);
      assert.ok(Date.now() - started >= 950, `retried after ${Date.now() - started} ms, not after the 1 s the header asks`);
      assert.equal(sandbox.calls('dataTrails.assets'), 2);

      sandbox.resetCalls();
      sandbox.fault('dataTrails.assets', { kind: 'rateLimited', resetSeconds: 60 });
      const limited = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({});
      const [msg] = await limited;
      assert.equal(msg!.statusCode, 429);
      assert.equal((msg!.headers as Record<string, string>)['archivist-rate-limit-reset'], '60');
      assert.equal(sandbox.calls('dataTrails.assets'), 1, 'a wait longer than allowed is passed on, not slept');
    });

    it('does not repeat a POST answered with 429', async () => {
      const f = await load('datatrails', { request: { method: 'POST' } });
      sandbox.fault('dataTrails.assets', { kind: 'status', status: 429, headers: { 'retry-after': '0' } });
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({ payload: { behaviours: ['RecordEvidence'], attributes: { arc_display_name: 'pump' } } });
      assert.equal((await out)[0]!.statusCode, 429);
      assert.equal(sandbox.calls('dataTrails.assets'), 1);
    });
  });

  describe('MBP', () => {
    it('get token gives the session cookie and the access-request header', async () => {
      const f = await load('mbp');
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.token).receive({});
      const [msg] = await out;
      const headers = msg!.headers as Record<string, string>;
      const { firstName, lastName, username } = sandbox.demo.mbp;
      assert.match(headers.cookie!, /^user_session=[^;]+$/);
      assert.equal(
        headers['x-mbp-access-request'],
        `requesting-entity-firstname=${firstName};;requesting-entity-lastname=${lastName};;requesting-entity-username=${username}`,
      );
      assert.equal((msg!.token as { type: string }).type, 'session');
    });

    it('resolves URLs under the context path, for /MBP as well', async () => {
      const f = await load('mbp', { config: { url: `${sandbox.url}/MBP` }, request: { url: 'api/devices?page=0&size=5' } });
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({});
      const [msg] = await out;
      assert.equal(msg!.statusCode, 200);
      assert.equal(msg!.responseUrl, `${sandbox.url}/MBP/api/devices?page=0&size=5`);
    });

    it('a URL without the context path gets a clear error', async () => {
      const f = await load('mbp', { config: { url: sandbox.url } });
      const errors = H.collect(f.ids.errors, 1);
      H.node(f.ids.token).receive({});
      const error = (await errors)[0]!.error as { message: string };
      assert.match(error.message, /MBP login/);
    });

    it('refuses user names that would break the X-MBP-Access-Request header, before any API call', async () => {
      // An MBP whose users have names MBP's header parser cannot take (ACAccessRequest.valueOf: a second "="
      // cuts the value short, ";;" starts a piece of its own); the sandbox's demo user is well-formed, so a small login server stands in.
      const names: [string, string, string][] = [
        ['Ada=1', 'Lovelace', 'firstName'],
        ['Ada', 'Love;;lace', 'lastName'],
      ];
      let current = 0;
      const mbp = await startHttpServer((req, res) => {
        const [firstName, lastName] = names[current]!;
        if (req.url === '/mbp/api/users/login') {
          res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'user_session=abc123; Path=/; Max-Age=600; HttpOnly' });
          res.end(JSON.stringify({ id: '1', username: 'odd', firstName, lastName, isAdmin: false }));
        } else res.writeHead(500).end();
      });
      try {
        for (current = 0; current < names.length; current++) {
          const f = await load('mbp', { config: { url: `${mbp.url}/mbp` }, credentials: { username: 'odd', password: 'odd-password-123' } });
          const errors = H.collect(f.ids.errors, 1);
          H.node(f.ids.request).receive({});
          const error = (await errors)[0]!.error as { code: string; message: string };
          assert.equal(error.code, 'CONFIG_INVALID');
          assert.match(error.message, new RegExp(`user's ${names[current]![2]} is .*X-MBP-Access-Request header cannot carry`));
          await H.unload();
        }
        assert.ok(
          mbp.requests.every((r) => r.url === '/mbp/api/users/login'),
          'no API call was made',
        );
      } finally {
        await mbp.stop();
      }
    });

    it("leaves a name the user's profile lacks out of the header: MBP requires no key (ACAccessRequest.valueOf), and an empty value would be its 500", async () => {
      const mbp = await startHttpServer((req, res) => {
        if (req.url === '/mbp/api/users/login') {
          res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'user_session=abc123; Path=/; Max-Age=600; HttpOnly' });
          res.end(JSON.stringify({ id: '1', username: 'nameless', firstName: null, lastName: '', isAdmin: false }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ accessRequest: req.headers['x-mbp-access-request'] }));
        }
      });
      try {
        const f = await load('mbp', { config: { url: `${mbp.url}/mbp` }, credentials: { username: 'nameless', password: 'nameless-password-1' } });
        const out = H.collect(f.ids.out, 1);
        H.node(f.ids.request).receive({});
        const [msg] = await out;
        assert.equal(msg!.statusCode, 200);
        assert.deepEqual(msg!.payload, { accessRequest: 'requesting-entity-username=nameless' });
      } finally {
        await mbp.stop();
      }
    });

    it("a 401 with MBP's error body (a missing permission) is the output, MBP's message in msg.payload, with no new login; an empty 401 still logs in again", async () => {
      // The sandbox's demo user owns three devices; 609c…f299 is another user's (MBP: RestExceptionHandler.java:53-58).
      const f = await load('mbp', { request: { url: '', ret: 'obj' } });
      const othersDevice = '/api/devices/609c9d449672bb5e7177f299';
      for (let i = 0; i < 3; i++) {
        const out = H.collect(f.ids.out, 1);
        H.node(f.ids.request).receive({ url: othersDevice });
        const msg = (await out)[0]!;
        assert.equal(msg.statusCode, 401);
        assert.equal((msg.payload as { message: string }).message, "Missing permission 'READ' for Entity with id '609c9d449672bb5e7177f299'.");
      }
      assert.equal(sandbox.calls('mbp.login'), 1, 'one login for all three: a permission error is not a lost session');
      // The session ends (a 401 with no body): that one is a lost session, cured by a new login.
      sandbox.revokeTokens();
      const out = H.collect(f.ids.out, 1);
      H.node(f.ids.request).receive({ url: '/api/devices' });
      assert.equal((await out)[0]!.statusCode, 200);
      assert.equal(sandbox.calls('mbp.login'), 2);
    });

    it('an unknown user and a wrong password say which', async () => {
      const unknown = await load('mbp', { credentials: { username: 'nobody-here', password: 'whatever-password' } });
      const errors = H.collect(unknown.ids.errors, 1);
      H.node(unknown.ids.token).receive({});
      assert.match(((await errors)[0]!.error as { message: string }).message, /does not know this user \(404\)/);
      await H.unload();
      const wrong = await load('mbp', { credentials: { username: sandbox.demo.mbp.username, password: 'wrong-mbp-password-0000' } });
      const errors2 = H.collect(wrong.ids.errors, 1);
      H.node(wrong.ids.token).receive({});
      assert.match(((await errors2)[0]!.error as { message: string }).message, /password is wrong/);
    });
  });
});
