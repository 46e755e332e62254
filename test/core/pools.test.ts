import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DispatcherRegistry } from '../../src/core/dispatchers.js';
import { ErrorCode } from '../../src/core/errors.js';
import { HostLimiter } from '../../src/core/host-limiter.js';
import { HttpClient } from '../../src/core/http/index.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A loopback server that counts its open sockets and the requests it is
 * answering at once, and advertises a long keep-alive (as some platforms do).
 */
async function countingServer(answerAfterMs = 0) {
  let open = 0;
  let maxOpen = 0;
  let connections = 0;
  let busy = 0;
  let maxBusy = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    busy++;
    maxBusy = Math.max(maxBusy, busy);
    req.resume();
    setTimeout(() => {
      busy--;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }, answerAfterMs);
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket) => {
    connections++;
    open++;
    maxOpen = Math.max(maxOpen, open);
    sockets.add(socket);
    socket.on('close', () => {
      open--;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    stats: () => ({ open, maxOpen, connections, maxBusy }),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('connection pools shared by origin', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (stops.length) await stops.pop()!();
  });
  async function server(answerAfterMs = 0) {
    const s = await countingServer(answerAfterMs);
    stops.push(s.stop);
    return s;
  }

  it('clients with the same TLS and proxy settings share one pool; the last to close releases it', async () => {
    const s = await server(20);
    const registry = new DispatcherRegistry();
    const a = new HttpClient({ dispatchers: registry, connectionsPerOrigin: 3 });
    const b = new HttpClient({ dispatchers: registry, connectionsPerOrigin: 3 });
    const other = new HttpClient({ dispatchers: registry, connectionsPerOrigin: 3, tls: { rejectUnauthorized: false } });
    assert.equal(registry.size, 2, 'one agent for a and b, one for the other TLS settings');
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).send({ method: 'GET', url: `${s.url}/x` })));
    assert.equal(answers.filter((r) => r.statusCode === 200).length, 12);
    assert.ok(s.stats().connections <= 3, `${s.stats().connections} connections: a and b share one pool of 3`);
    await a.close();
    assert.equal(registry.size, 2, 'b still uses the shared pool');
    assert.equal((await b.send({ method: 'GET', url: `${s.url}/x` })).statusCode, 200);
    await assert.rejects(a.send({ method: 'GET', url: `${s.url}/x` }), { code: ErrorCode.CLOSED });
    await b.close();
    assert.equal(registry.size, 1, 'the pool only a and b used is gone');
    await waitFor(() => s.stats().open === 0, { what: 'the idle connections to close' });
    await other.close();
    assert.equal(registry.size, 0);
  });

  it('a burst queues on the per-origin connection limit instead of opening a socket per request', async () => {
    const s = await server(30);
    const registry = new DispatcherRegistry();
    const clients = Array.from({ length: 10 }, () => new HttpClient({ dispatchers: registry, connectionsPerOrigin: 4 }));
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => clients[i % 10].send({ method: 'GET', url: `${s.url}/burst` })));
    assert.equal(answers.filter((r) => r.statusCode === 200).length, 60);
    assert.ok(s.stats().maxOpen <= 4, `${s.stats().maxOpen} sockets were open at once; the limit is 4`);
    for (const client of clients) await client.close();
    assert.equal(registry.size, 0);
  });

  it('closes idle connections after its own bound, though the server advertises a longer keep-alive', async () => {
    const s = await server();
    const registry = new DispatcherRegistry();
    const client = new HttpClient({ dispatchers: registry, idleMs: 300 });
    await client.send({ method: 'GET', url: `${s.url}/once` });
    assert.equal(s.stats().open, 1);
    await waitFor(() => s.stats().open === 0, { what: 'the idle connection to close' }); // the server would keep it 60 s
    assert.equal(registry.size, 1, 'the client still holds its pool; only the idle socket closed');
    assert.equal((await client.send({ method: 'GET', url: `${s.url}/again` })).statusCode, 200);
    await client.close();
  });
});

describe('token requests in flight per host', () => {
  it('runs at most the limit at once, the rest in the order they came', async () => {
    const limiter = new HostLimiter(3);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const gates: Array<() => void> = [];
    const tasks = Array.from({ length: 12 }, (_, i) =>
      limiter.run('h:1', async () => {
        started.push(i);
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
        if (i === 4) throw new Error('a failed request frees its place too');
        return i;
      }),
    );
    while (started.length < 12 || gates.length) {
      await new Promise((r) => setImmediate(r));
      assert.ok(running <= 3);
      gates.shift()?.();
    }
    const outcomes = await Promise.allSettled(tasks);
    assert.equal(most, 3);
    assert.deepEqual(started, [...Array(12).keys()], 'queued in order');
    assert.equal(outcomes.filter((o) => o.status === 'rejected').length, 1);
    assert.deepEqual(limiter.load('h:1'), { running: 0, queued: 0 });
  });

  it('limits each host on its own', async () => {
    const limiter = new HostLimiter(1);
    const order: string[] = [];
    let release!: () => void;
    const first = limiter.run('a', () => new Promise<void>((r) => (release = r)).then(() => order.push('a1')));
    const other = limiter.run('b', async () => order.push('b1'));
    const second = limiter.run('a', async () => order.push('a2'));
    await other;
    assert.deepEqual(limiter.load('a'), { running: 1, queued: 1 });
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ['b1', 'a1', 'a2']);
  });

  it('an HTTP client sends requests that carry a secret through the limiter; other requests are not held', async () => {
    const s = await countingServer(40);
    const registry = new DispatcherRegistry();
    const limiter = new HostLimiter(2);
    const clients = Array.from({ length: 5 }, () => new HttpClient({ dispatchers: registry, secretRequests: limiter }));
    try {
      const tokens = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          clients[i % 5].send({ method: 'POST', url: `${s.url}/token`, body: 'secret=x', carriesSecret: { what: 'the token endpoint' } }),
        ),
      );
      assert.equal(tokens.filter((r) => r.statusCode === 200).length, 10);
      assert.equal(s.stats().maxBusy, 2, 'two token requests at once, across five clients');
      await Promise.all(Array.from({ length: 6 }, () => clients[0].send({ method: 'GET', url: `${s.url}/api` })));
      assert.ok(s.stats().maxBusy > 2, 'API calls are not limited');
    } finally {
      for (const client of clients) await client.close();
      await s.stop();
    }
  });
});
