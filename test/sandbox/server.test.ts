import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { ciscoEiToken, dataTrailsToken, insightsHubToken, insightsHubTokenRequest, mbpLogin, sleep } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

describe('sandbox: server, faults, counters, test helpers', () => {
  let sandbox: Sandbox;
  let echoUrl: string;

  before(async () => {
    sandbox = await startSandbox({ lifetimes: { dataTrailsToken: 77 } });
    echoUrl = `${sandbox.url}/__sandbox/echo`;
  });
  after(() => sandbox.stop());
  afterEach(() => {
    sandbox.clearFaults();
    sandbox.resetCalls();
  });

  describe('basics', () => {
    it('listens on 127.0.0.1 and takes lifetimes from the options', async () => {
      assert.match(sandbox.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(sandbox.lifetimes.dataTrailsToken, 77);
      assert.equal(sandbox.lifetimes.insightsHubAppToken, 1800);
    });

    it('answers 404 JSON to an unknown path, and counts it nowhere', async () => {
      const response = await fetch(`${sandbox.url}/api/nothing/here`);
      assert.equal(response.status, 404);
      assert.equal(((await response.json()) as { error: string }).error, 'Not Found');
    });

    it('answers 413 to a request body over 1 MiB', async () => {
      const response = await fetch(echoUrl, { method: 'POST', body: Buffer.alloc(1024 * 1024 + 1, 'a') });
      assert.equal(response.status, 413);
      const fine = await fetch(echoUrl, { method: 'POST', body: Buffer.alloc(1024 * 1024, 'a') });
      assert.equal(fine.status, 200);
    });

    it('counts every request that reaches an endpoint, faulted or not', async () => {
      await insightsHubToken(sandbox);
      sandbox.fault('insightsHub.token', { kind: 'status', status: 500, times: 1 });
      await insightsHubTokenRequest(sandbox);
      await fetch(`${sandbox.url}/api/technicaltokenmanager/v3/oauth/token`); // 405, still counted
      assert.equal(sandbox.calls('insightsHub.token'), 3);
      assert.equal(sandbox.calls('insightsHub.users'), 0);
      sandbox.resetCalls();
      assert.equal(sandbox.calls('insightsHub.token'), 0);
      assert.throws(() => sandbox.calls('insightsHub.tokens' as never), /unknown sandbox endpoint/);
    });
  });

  describe('faults', () => {
    it('status: sends the status, headers and body, `times` times', async () => {
      sandbox.fault('sandbox.echo', { kind: 'status', status: 429, headers: { 'retry-after': '1' }, times: 2 });
      for (let i = 0; i < 2; i++) {
        const response = await fetch(echoUrl);
        assert.equal(response.status, 429);
        assert.equal(response.headers.get('retry-after'), '1');
        assert.equal(((await response.json()) as { error: string }).error, 'Too Many Requests');
      }
      assert.equal((await fetch(echoUrl)).status, 200);

      sandbox.fault('sandbox.echo', { kind: 'status', status: 503, headers: { 'archivist-rate-limit-reset': '2' }, body: 'busy' });
      const custom = await fetch(echoUrl);
      assert.equal(custom.status, 503);
      assert.equal(custom.headers.get('archivist-rate-limit-reset'), '2');
      assert.equal(await custom.text(), 'busy');
      assert.equal((await fetch(echoUrl)).status, 503, 'until cleared');
      sandbox.clearFaults('sandbox.echo');
      assert.equal((await fetch(echoUrl)).status, 200);
    });

    it('a new fault replaces the previous one of the endpoint', async () => {
      sandbox.fault('sandbox.echo', { kind: 'status', status: 500 });
      sandbox.fault('sandbox.echo', { kind: 'status', status: 401, body: '' });
      const response = await fetch(echoUrl);
      assert.equal(response.status, 401);
      assert.equal(await response.text(), '');
    });

    it('refuse: the connection is closed without an answer', async () => {
      sandbox.fault('insightsHub.token', { kind: 'refuse', times: 1 });
      await assert.rejects(insightsHubTokenRequest(sandbox), TypeError);
      assert.equal((await insightsHubTokenRequest(sandbox)).status, 200);
      assert.equal(sandbox.calls('insightsHub.token'), 2);
    });

    it('delay: a client that gives up meanwhile does not disturb the server', async () => {
      const delayMs = 200;
      sandbox.fault('sandbox.echo', { kind: 'delay', ms: delayMs, times: 1 });
      await assert.rejects(fetch(echoUrl, { method: 'POST', body: 'x', signal: AbortSignal.timeout(50) }));
      // Kept on purpose: the point is what the server does once the delay has run out for a client that left,
      // and nothing outside the server marks that moment.
      await sleep(delayMs + 50);
      assert.equal((await fetch(echoUrl)).status, 200);
      assert.equal(sandbox.calls('sandbox.echo'), 2);
    });

    it('delay: waits, then answers normally', async () => {
      sandbox.fault('sandbox.echo', { kind: 'delay', ms: 300, times: 1 });
      const started = Date.now();
      const response = await fetch(echoUrl);
      assert.equal(response.status, 200);
      assert.ok(Date.now() - started >= 290, `took ${Date.now() - started} ms`);
    });

    it('malformed: 200, JSON content type, a body that is not JSON', async () => {
      sandbox.fault('insightsHub.token', { kind: 'malformed' });
      const response = await insightsHubTokenRequest(sandbox);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/json');
      const text = await response.text();
      assert.throws(() => JSON.parse(text), SyntaxError);
    });

    it('oversized: streams exactly `bytes` bytes', async () => {
      sandbox.fault('sandbox.echo', { kind: 'oversized', bytes: 3 * 1024 * 1024 + 5, times: 1 });
      const response = await fetch(echoUrl);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-length'), null, 'chunked: the client must count');
      const body = Buffer.from(await response.arrayBuffer());
      assert.equal(body.length, 3 * 1024 * 1024 + 5);
      assert.match(body.subarray(0, 12).toString(), /^\{"padding":"/);
    });

    it('oversized: the default 64 MiB stream stops when the client goes away', async () => {
      sandbox.fault('sandbox.echo', { kind: 'oversized', times: 1 });
      const controller = new AbortController();
      const response = await fetch(echoUrl, { signal: controller.signal });
      const reader = response.body!.getReader();
      let received = 0;
      while (received < 1024 * 1024) received += (await reader.read()).value!.length;
      controller.abort();
      await reader.cancel().catch(() => undefined);
      assert.equal((await fetch(echoUrl)).status, 200, 'the server goes on serving');
    });

    it('rejects a mistyped fault at once', () => {
      assert.throws(() => sandbox.fault('sandbox.echo', { kind: 'status', status: 99 }), TypeError);
      assert.throws(() => sandbox.fault('sandbox.echo', { kind: 'delay', ms: 10, times: 0 }), TypeError);
      assert.throws(() => sandbox.fault('no.such' as never, { kind: 'refuse' }), /unknown sandbox endpoint/);
    });
  });

  describe('echo and redirect', () => {
    it('echoes method, path, query, headers and body, with credentials redacted', async () => {
      const response = await fetch(`${echoUrl}/some/path?a=1&b=2&b=3`, {
        method: 'PUT',
        headers: {
          authorization: 'Bearer secret-token-value',
          cookie: 'user_session=secret-session',
          'x-space-auth-key': 'Basic c2VjcmV0',
          'x-mbp-access-request': 'requesting-entity-username=secret',
          'x-tenant-id': 'tenant-1',
          'x-custom': 'visible',
          'content-type': 'text/plain',
        },
        body: 'hello',
      });
      const text = await response.text();
      for (const secret of ['secret-token-value', 'secret-session', 'c2VjcmV0', 'requesting-entity-username']) {
        assert.ok(!text.includes(secret), secret);
      }
      const echo = JSON.parse(text) as Record<string, unknown>;
      assert.equal(echo.method, 'PUT');
      assert.equal(echo.path, '/__sandbox/echo/some/path');
      assert.deepEqual(echo.query, { a: '1', b: ['2', '3'] });
      const headers = echo.headers as Record<string, string>;
      assert.equal(headers.authorization, '<redacted>');
      assert.equal(headers.cookie, '<redacted>');
      assert.equal(headers['x-space-auth-key'], '<redacted>');
      assert.equal(headers['x-mbp-access-request'], '<redacted>');
      assert.equal(headers['x-custom'], 'visible');
      assert.equal(echo.body, 'hello');
      assert.equal(echo.authenticated, null);
      assert.equal(echo.tenant, 'tenant-1');
      assert.equal(sandbox.calls('sandbox.echo'), 1);
    });

    it('says which platform a working credential belongs to', async () => {
      const authenticatedAs = async (headers: Record<string, string>): Promise<unknown> =>
        ((await (await fetch(echoUrl, { headers })).json()) as { authenticated: unknown }).authenticated;
      assert.equal(await authenticatedAs({ authorization: `Bearer ${await insightsHubToken(sandbox)}` }), 'insights-hub-app');
      assert.equal(await authenticatedAs({ authorization: `Bearer ${await ciscoEiToken(sandbox)}` }), 'cisco-ei');
      assert.equal(await authenticatedAs({ authorization: `Bearer ${await dataTrailsToken(sandbox)}` }), 'datatrails');
      assert.equal(await authenticatedAs({ cookie: (await mbpLogin(sandbox)).cookie }), 'mbp');
      assert.equal(await authenticatedAs({ authorization: 'Bearer not-a-token' }), null);
    });

    it('redirects to the given URL with the given status', async () => {
      const redirect = `${sandbox.url}/__sandbox/redirect`;
      const found = await fetch(`${redirect}?to=${encodeURIComponent('https://elsewhere.example/x')}`, { redirect: 'manual' });
      assert.equal(found.status, 302);
      assert.equal(found.headers.get('location'), 'https://elsewhere.example/x');
      const temporary = await fetch(`${redirect}?to=/__sandbox/echo/after&status=307`, { redirect: 'manual' });
      assert.equal(temporary.status, 307);
      assert.equal(temporary.headers.get('location'), '/__sandbox/echo/after');
      const followed = await fetch(`${redirect}?to=/__sandbox/echo/after`);
      assert.equal(((await followed.json()) as { path: string }).path, '/__sandbox/echo/after');
      assert.equal((await fetch(redirect, { redirect: 'manual' })).status, 400);
      assert.equal(sandbox.calls('sandbox.redirect'), 4);
    });
  });

  describe('stop', () => {
    it('closes open keep-alive sockets, ends delays and streams, and is idempotent', async () => {
      const own = await startSandbox();
      // A keep-alive connection left open by an earlier request.
      await fetch(`${own.url}/__sandbox/echo`).then((response) => response.text());
      own.fault('sandbox.echo', { kind: 'delay', ms: 60_000 });
      own.fault('sandbox.redirect', { kind: 'oversized' });
      const delayed = fetch(`${own.url}/__sandbox/echo`).catch((error: unknown) => error);
      const streaming = await rawGet(`${own.url}/__sandbox/redirect`);
      await waitFor(() => own.calls('sandbox.echo') === 2, { what: 'the delayed request to reach the sandbox' });
      const started = Date.now();
      await Promise.all([own.stop(), own.stop()]);
      await own.stop();
      assert.ok(Date.now() - started < 2000, `stop took ${Date.now() - started} ms`);
      assert.ok((await delayed) instanceof Error);
      await streaming;
      await assert.rejects(fetch(`${own.url}/__sandbox/echo`));
    });
  });
});

/** Starts reading a response with node:http (not paused by fetch's buffering); resolves when the socket ends. */
function rawGet(url: string): Promise<Promise<void>> {
  return new Promise((resolveStarted, rejectStarted) => {
    const request = httpRequest(url, (response) => {
      const ended = new Promise<void>((resolve) => {
        response.on('close', resolve);
        response.on('error', () => resolve());
      });
      response.resume();
      resolveStarted(ended);
    });
    request.on('error', rejectStarted);
    request.end();
  });
}
