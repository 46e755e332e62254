import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode } from '../../src/core/errors.js';
import { HttpClient } from '../../src/core/http/index.js';
import { deadPort, startConnectProxy, startHttpServer, startHttpsServer, type TestServer } from '../helpers/servers.js';

const fixtures = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'tls');
const read = (name: string) => fs.readFileSync(path.join(fixtures, name), 'utf8');

describe('HttpClient', () => {
  const stops: Array<() => Promise<void>> = [];
  let client: HttpClient;
  beforeEach(() => {
    client = new HttpClient({ timeoutMs: 2000 });
  });
  afterEach(async () => {
    await client.close();
    while (stops.length) await stops.pop()!();
  });
  async function server(handler: Parameters<typeof startHttpServer>[0]): Promise<TestServer> {
    const s = await startHttpServer(handler);
    stops.push(s.stop);
    return s;
  }

  it('sends method, headers and body, and reads status, headers and body', async () => {
    const s = await server((req, res, body) => {
      res.setHeader('X-Echo', `${req.method} ${req.headers['x-test']} ${body.toString()}`);
      res.writeHead(201).end('done');
    });
    const res = await client.send({ method: 'post', url: `${s.url}/x`, headers: { 'x-test': 'yes' }, body: 'hello' });
    assert.equal(res.statusCode, 201);
    assert.equal(res.headers['x-echo'], 'POST yes hello');
    assert.equal(res.body.toString(), 'done');
    assert.equal(res.url, `${s.url}/x`);
  });

  it('applies auth headers only on their origin, and never carries them through a redirect to another origin', async () => {
    const foreign = await server((_req, res) => res.writeHead(200).end('foreign'));
    const home = await server((req, res) => {
      if (req.url === '/away') res.writeHead(302, { location: `${foreign.url}/landing` }).end();
      else if (req.url === '/here') res.writeHead(307, { location: '/final' }).end();
      else res.writeHead(200).end('home');
    });
    const auth = { origin: new URL(home.url).origin, headers: { authorization: 'Bearer s3cr3t-token' } };
    const away = await client.send({ method: 'GET', url: `${home.url}/away`, auth, headers: { cookie: 'session=x', accept: 'text/plain' } });
    assert.equal(away.body.toString(), 'foreign');
    assert.equal(away.url, `${foreign.url}/landing`);
    const landed = foreign.requests[0]!;
    assert.equal(landed.headers.authorization, undefined);
    assert.equal(landed.headers.cookie, undefined);
    assert.equal(landed.headers.accept, 'text/plain');
    assert.equal(home.requests[0]!.headers.authorization, 'Bearer s3cr3t-token');

    await client.send({ method: 'GET', url: `${home.url}/here`, auth });
    assert.equal(home.requests.at(-1)!.url, '/final');
    assert.equal(home.requests.at(-1)!.headers.authorization, 'Bearer s3cr3t-token', 'same origin keeps auth');
  });

  it('a request that carries a secret never follows a redirect, whatever the status: an error naming the status and the other origin', async () => {
    const foreign = await server((_req, res) => res.writeHead(200).end('stolen'));
    for (const status of [301, 302, 303, 307, 308]) {
      const home = await server((_req, res) => res.writeHead(status, { location: `${foreign.url}/steal` }).end());
      await assert.rejects(
        client.send({ method: 'POST', url: `${home.url}/token`, body: 'client_secret=s3cr3t', carriesSecret: { what: 'the token endpoint' } }),
        (err: Error & { code: string; statusCode: number }) => {
          assert.equal(err.code, ErrorCode.TOKEN_ENDPOINT_ERROR);
          assert.equal(err.statusCode, status);
          assert.ok(err.message.includes(`answered ${status}`) && err.message.includes(new URL(foreign.url).origin), err.message);
          assert.match(err.message, /check the configured URL/);
          assert.ok(!err.message.includes('s3cr3t'));
          return true;
        },
      );
      assert.equal(home.requests.length, 1);
    }
    const same = await server((req, res) => (req.url === '/token' ? res.writeHead(307, { location: '/other' }).end() : res.writeHead(200).end()));
    await assert.rejects(
      client.send({ method: 'POST', url: `${same.url}/token`, body: 'x', carriesSecret: { what: 'the token endpoint', advice: 'add the context path' } }),
      /redirect to .*\/other.*add the context path/,
    );
    assert.equal(same.requests.length, 1, 'not even the same origin is followed');
    assert.equal(foreign.requests.length, 0);
  });

  it('an API request never re-sends its body to another origin: that redirect is the answer', async () => {
    const foreign = await server((_req, res) => res.writeHead(200).end('foreign'));
    const cases: [number, string][] = [
      [307, 'POST'],
      [308, 'POST'],
      [307, 'PUT'],
      [308, 'PATCH'],
      [301, 'PUT'],
      [302, 'DELETE'],
    ];
    for (const [status, method] of cases) {
      const home = await server((_req, res) => res.writeHead(status, { location: `${foreign.url}/x` }).end());
      const res = await client.send({ method, url: `${home.url}/api`, body: '{"secret":"payload"}' });
      assert.equal(res.statusCode, status, `${status} ${method}`);
      assert.equal(res.url, `${home.url}/api`);
    }
    assert.equal(foreign.requests.length, 0);
    // Same origin, or a GET without body: followed as before.
    const home = await server((req, res, body) =>
      req.url === '/a' ? res.writeHead(307, { location: '/b' }).end() : res.writeHead(200).end(`${req.method}:${body}`),
    );
    assert.equal((await client.send({ method: 'POST', url: `${home.url}/a`, body: 'kept' })).body.toString(), 'POST:kept');
  });

  it('bounds redirects', async () => {
    const s = await server((_req, res) => res.writeHead(302, { location: '/again' }).end());
    await assert.rejects(client.send({ method: 'GET', url: s.url }), { code: ErrorCode.HTTP_TOO_MANY_REDIRECTS });
    assert.equal(s.requests.length, 6);
  });

  it('turns a POST answered with 303 into a GET without body', async () => {
    const s = await server((req, res, body) => {
      if (req.url === '/form') res.writeHead(303, { location: '/result' }).end();
      else res.writeHead(200).end(`${req.method}:${body.length}`);
    });
    const res = await client.send({ method: 'POST', url: `${s.url}/form`, body: 'data', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.body.toString(), 'GET:0');
  });

  it('times out a server that does not answer', async () => {
    const s = await server(() => undefined);
    await assert.rejects(client.send({ method: 'GET', url: s.url, timeoutMs: 200 }), (err: Error & { code: string }) => {
      assert.equal(err.code, ErrorCode.HTTP_TIMEOUT);
      assert.match(err.message, /did not answer within 200 ms/);
      return true;
    });
  });

  it('times out a server that stalls in the middle of the body', async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
    });
    await assert.rejects(client.send({ method: 'GET', url: s.url, timeoutMs: 300 }), { code: ErrorCode.HTTP_TIMEOUT });
  });

  it('refuses a response larger than the cap, declared or streamed', async () => {
    const s = await server((req, res) => {
      if (req.url === '/declared') res.writeHead(200, { 'content-length': '5000' }).end('x'.repeat(5000));
      else {
        res.writeHead(200);
        for (let i = 0; i < 50; i++) res.write('y'.repeat(1000));
        res.end();
      }
    });
    await assert.rejects(client.send({ method: 'GET', url: `${s.url}/declared`, maxResponseBytes: 1000 }), {
      code: ErrorCode.HTTP_RESPONSE_TOO_LARGE,
    });
    await assert.rejects(client.send({ method: 'GET', url: `${s.url}/streamed`, maxResponseBytes: 1000 }), {
      code: ErrorCode.HTTP_RESPONSE_TOO_LARGE,
    });
  });

  it('says so when nothing listens', async () => {
    const port = await deadPort();
    await assert.rejects(client.send({ method: 'GET', url: `http://127.0.0.1:${port}/x?secret=1` }), (err: Error & { code: string }) => {
      assert.equal(err.code, ErrorCode.HTTP_CONNECTION_REFUSED);
      assert.ok(!err.message.includes('secret=1'), 'query strings stay out of messages');
      return true;
    });
  });

  it('retries 429 after Retry-After for safe methods, a bounded number of times', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      n += 1;
      if (n <= 2) res.writeHead(429, { 'retry-after': '0' }).end();
      else res.writeHead(200).end('ok');
    });
    const ok = await client.send({ method: 'GET', url: s.url });
    assert.equal(ok.statusCode, 200);
    assert.equal(n, 3);

    n = -100; // always 429 from now on
    const limited = await client.send({ method: 'GET', url: s.url, retry: { maxRetries: 2, maxWaitMs: 1000 } });
    assert.equal(limited.statusCode, 429);
    assert.equal(s.requests.length, 3 + 3);
  });

  it('honours Archivist-Rate-Limit-Reset, and passes on a wait longer than allowed', async () => {
    let n = 0;
    const s = await server((req, res) => {
      n += 1;
      if (req.url === '/long') res.writeHead(503, { 'retry-after': '3600' }).end();
      else if (n === 1) res.writeHead(429, { 'archivist-rate-limit-reset': '0' }).end();
      else res.writeHead(200).end();
    });
    assert.equal((await client.send({ method: 'GET', url: s.url })).statusCode, 200);
    assert.equal((await client.send({ method: 'GET', url: `${s.url}/long` })).statusCode, 503);
    assert.equal(s.requests.length, 3);
  });

  it('never repeats a POST on 429', async () => {
    const s = await server((_req, res) => res.writeHead(429, { 'retry-after': '0' }).end());
    assert.equal((await client.send({ method: 'POST', url: s.url, body: '{}' })).statusCode, 429);
    assert.equal(s.requests.length, 1);
  });

  describe('TLS', () => {
    let tlsServer: TestServer;
    beforeEach(async () => {
      tlsServer = await startHttpsServer({ key: read('server.key'), cert: read('server.pem') }, (_req, res) => res.writeHead(200).end('secure'));
      stops.push(tlsServer.stop);
    });

    it('verifies certificates by default', async () => {
      await assert.rejects(client.send({ method: 'GET', url: tlsServer.url }), { code: ErrorCode.HTTP_TLS_ERROR });
    });

    it('trusts a CA given in the TLS options', async () => {
      const trusting = new HttpClient({ tls: { ca: read('ca.pem') } });
      try {
        assert.equal((await trusting.send({ method: 'GET', url: tlsServer.url })).body.toString(), 'secure');
      } finally {
        await trusting.close();
      }
    });
  });

  describe('proxy', () => {
    it('tunnels through an explicit proxy with its credentials, and skips it for no-proxy hosts', async () => {
      const target = await server((_req, res) => res.writeHead(200).end('via'));
      const proxy = await startConnectProxy();
      stops.push(proxy.stop);
      const proxied = new HttpClient({ proxy: { url: proxy.url, username: 'pu', password: 'pp' } });
      try {
        assert.equal((await proxied.send({ method: 'GET', url: target.url })).body.toString(), 'via');
        assert.equal(proxy.connects.length, 1);
        assert.equal(proxy.connects[0]!.headers['proxy-authorization'], `Basic ${Buffer.from('pu:pp').toString('base64')}`);
      } finally {
        await proxied.close();
      }
      const bypass = new HttpClient({ proxy: { url: proxy.url, noProxy: ['127.0.0.1'] } });
      try {
        await bypass.send({ method: 'GET', url: target.url });
        assert.equal(proxy.connects.length, 1, 'no-proxy host reached directly');
      } finally {
        await bypass.close();
      }
    });
  });
});
