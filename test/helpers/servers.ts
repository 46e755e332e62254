import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** Small loopback servers for tests; each returns its URL and a stop() that ends everything it opened. */
export interface TestServer {
  url: string;
  port: number;
  requests: http.IncomingMessage[];
  stop(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

async function listen(server: http.Server | https.Server, requests: http.IncomingMessage[], scheme: string): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function withBody(handler: Handler, requests: http.IncomingMessage[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests.push(req);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks)));
  };
}

export function startHttpServer(handler: Handler): Promise<TestServer> {
  const requests: http.IncomingMessage[] = [];
  return listen(http.createServer(withBody(handler, requests)), requests, 'http');
}

export function startHttpsServer(options: https.ServerOptions, handler: Handler): Promise<TestServer> {
  const requests: http.IncomingMessage[] = [];
  return listen(https.createServer(options, withBody(handler, requests)), requests, 'https');
}

/** A forward proxy that tunnels CONNECT requests and records each with its headers. */
export async function startConnectProxy(): Promise<TestServer & { connects: http.IncomingMessage[] }> {
  const requests: http.IncomingMessage[] = [];
  const connects: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    res.writeHead(405).end();
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    connects.push(req);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
  });
  const started = await listen(server, requests, 'http');
  return { ...started, connects };
}

/** A port on which nothing listens (bound, then closed). */
export async function deadPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
