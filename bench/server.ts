/**
 * The benchmark's server, run in a child process so its CPU is not counted
 * as the client's: the sandbox (token endpoints) behind a small front server
 * on one loopback origin that answers `GET /bench/small` itself (a small JSON
 * body, a Bearer token required) and passes everything else to the sandbox.
 * It counts what the client does: open sockets, token requests, and the
 * largest number of token requests in flight at once.
 *
 * It advertises a long keep-alive (120 s), as some platforms do: how long
 * idle sockets stay open is then the client's decision.
 *
 * Talks to its parent over IPC: 'stats' and 'reset'.
 */
import http from 'node:http';
import { startSandbox } from '../src/sandbox/index.js';

const SMALL = Buffer.from(JSON.stringify({ id: 'assets/1', attributes: { arc_display_name: 'pump 7', temperature: 21.5 }, ok: true }));
/** The channel to bench/messages.js, which forks this file; run alone, there is none. */
function send(message: unknown): void {
  if (!process.send) throw new Error('bench/server.js reports to bench/messages.js, which starts it: run npm run bench');
  process.send(message);
}
const TOKEN_PATHS = ['/archivist/iam/v1/appidp/token', '/api/technicaltokenmanager/v3/oauth/token', '/oauth/token', '/mbp/api/users/login'];

async function main(): Promise<void> {
  const lifetime = Number(process.env.BENCH_TOKEN_LIFETIME_S) || undefined;
  const sandbox = await startSandbox(lifetime ? { lifetimes: { dataTrailsToken: lifetime } } : {});
  const upstream = new URL(sandbox.url);
  const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  let open = 0;
  let maxOpen = 0;
  let tokenRequests = 0;
  let tokenInflight = 0;
  let maxTokenInflight = 0;
  let apiRequests = 0;

  const server = http.createServer((req, res) => {
    if (req.url === '/bench/small') {
      apiRequests++;
      req.resume();
      if (!req.headers.authorization?.startsWith('Bearer ')) {
        res.writeHead(401, { 'content-type': 'application/json', 'content-length': 2 });
        res.end('{}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': SMALL.length });
      res.end(SMALL);
      return;
    }
    const isToken = TOKEN_PATHS.some((p) => req.url?.startsWith(p));
    if (isToken) {
      tokenRequests++;
      tokenInflight++;
      if (tokenInflight > maxTokenInflight) maxTokenInflight = tokenInflight;
      res.on('close', () => tokenInflight--);
    }
    const up = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent: upstreamAgent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.maxRequestsPerSocket = 0;
  // Sockets are counted per phase: opened since the last reset, still open.
  let phase = 0;
  server.on('connection', (socket) => {
    const born = phase;
    open++;
    if (open > maxOpen) maxOpen = open;
    socket.on('close', () => {
      if (born === phase) open--;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  process.on('message', (m: { id: number; cmd: string }) => {
    if (m.cmd === 'reset') {
      phase++;
      open = 0;
      tokenRequests = 0;
      maxTokenInflight = tokenInflight;
      maxOpen = 0;
      apiRequests = 0;
    }
    send({ id: m.id, stats: { open, maxOpen, tokenRequests, tokenInflight, maxTokenInflight, apiRequests } });
  });
  process.on('disconnect', () => process.exit(0));
  send({ ready: true, url: `http://127.0.0.1:${port}`, demo: sandbox.demo });
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
