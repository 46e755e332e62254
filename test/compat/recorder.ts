// A small loopback recorder in front of the sandbox: forwards every request,
// records what the client sent, and rewrites the sandbox's origin to its own
// in answers (boarding configurations and registration URIs name the sandbox),
// so that a client keeps talking through it.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  /** Lower-case names, as received. */
  headers: Record<string, string>;
  body: string;
  /** The answer as the client got it (the sandbox's origin rewritten to the recorder's), once it was sent. */
  response?: { status: number; headers: Record<string, string>; body: string };
}

export interface Recorder {
  url: string;
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

export async function startRecorder(target: string): Promise<Recorder> {
  const requests: RecordedRequest[] = [];
  let own = '';
  const server = http.createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', async () => {
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(incoming.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
      const recorded: RecordedRequest = { method: incoming.method ?? 'GET', path: incoming.url ?? '/', headers, body: body.toString('utf8') };
      requests.push(recorded);
      try {
        const forwarded = { ...headers };
        delete forwarded.host;
        delete forwarded['content-length'];
        delete forwarded.connection;
        const response = await fetch(`${target}${incoming.url ?? '/'}`, {
          method: incoming.method ?? 'GET',
          headers: forwarded,
          ...(body.length > 0 ? { body } : {}),
          redirect: 'manual',
        });
        const text = (await response.text()).split(target).join(own);
        const answerHeaders: Record<string, string> = {};
        response.headers.forEach((value, name) => {
          if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'content-encoding'].includes(name))
            answerHeaders[name] = value.split(target).join(own);
        });
        recorded.response = { status: response.status, headers: answerHeaders, body: text };
        outgoing.writeHead(response.status, answerHeaders);
        outgoing.end(text);
      } catch (error) {
        outgoing.writeHead(502, { 'content-type': 'text/plain' });
        outgoing.end(String(error));
      }
    });
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  own = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: own,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
