// The sandbox's one HTTP server: routes each request to a platform's handler,
// counts calls and applies injected faults per endpoint.

import { setMaxListeners } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { demoCredentials } from './demo-credentials.js';
import { applyFault, dropConnection, FaultTable } from './faults.js';
import { jsonReply, type Platform, type Reply, type Route, type SandboxContext } from './http-kit.js';
import { diagnosticRoutes } from './diagnostics.js';
import { createPlatforms, type SandboxPlatforms } from './platforms.js';
import { DEFAULT_LIFETIMES, ENDPOINT_NAMES, type EndpointName, type Sandbox, type SandboxOptions } from './types.js';

const MAX_REQUEST_BODY = 1024 * 1024;

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer();
  await listen(server, options.port ?? 0, host);
  const { port } = server.address() as AddressInfo;
  const context: SandboxContext = {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    lifetimes: { ...DEFAULT_LIFETIMES, ...options.lifetimes },
    demo: demoCredentials(),
  };

  let created: SandboxPlatforms;
  try {
    // Nothing reaches the server before the handler is attached below.
    created = await createPlatforms(context);
  } catch (error) {
    server.close();
    throw error;
  }
  const { agents, dataTrails } = created;
  const platforms: Platform[] = Object.values(created);
  const routes: Route[] = [...platforms.flatMap((platform) => platform.routes), ...diagnosticRoutes(platforms)];
  const faults = new FaultTable();
  const callCounts = new Map<EndpointName, number>();
  const stopping = new AbortController();
  // Every delayed request listens to it until its delay ends: a busy sandbox has far more than 10 at once.
  setMaxListeners(0, stopping.signal);

  function findRoute(path: string): { route: Route; params: string[] } | undefined {
    for (const route of routes) {
      const match = route.path.exec(path);
      if (match) return { route, params: match.slice(1) };
    }
    return undefined;
  }

  async function handle(incoming: IncomingMessage, response: ServerResponse): Promise<void> {
    const target = new URL(incoming.url ?? '/', 'http://sandbox.invalid');
    const path = decodePath(target.pathname);
    if (path === undefined) {
      return send(response, jsonReply(400, { error: 'Bad Request', message: 'Malformed percent-encoding in the path' }));
    }
    const found = findRoute(path);
    if (!found) return send(response, jsonReply(404, { error: 'Not Found', message: `No resource at ${target.pathname}` }));
    const { route, params } = found;
    // A platform with its own clock (skewed in tests) dates its answers by it, faults included.
    if (route.clock) response.setHeader('date', new Date(route.clock()).toUTCString());

    callCounts.set(route.endpoint, (callCounts.get(route.endpoint) ?? 0) + 1);
    const fault = faults.take(route.endpoint);
    const outcome = fault ? await applyFault(fault, incoming, response, stopping.signal) : 'continue';
    if (outcome === 'answered') return;
    if (response.destroyed) return; // the client gave up during a delay
    // dropResponse: the request is processed in full, then the answer is lost.
    const deliver = (reply: Reply): void => (outcome === 'drop' ? dropConnection(incoming) : send(response, reply));

    const method = incoming.method ?? 'GET';
    const handler = route.methods[method] ?? route.methods['*'];
    if (!handler) {
      const allow = Object.keys(route.methods).join(', ');
      return deliver(jsonReply(405, { error: 'Method Not Allowed', message: `${method} is not allowed here` }, { allow }));
    }
    const body = await readBody(incoming, MAX_REQUEST_BODY);
    if (body === undefined) {
      // Close the connection rather than read the rest of an oversized body.
      const message = `The request body exceeds ${MAX_REQUEST_BODY} bytes`;
      return deliver(jsonReply(413, { error: 'Payload Too Large', message }, { connection: 'close' }));
    }
    const request = { method, path, rawPath: target.pathname, query: target.searchParams, headers: incoming.headers, body };
    deliver(await handler(request, params));
  }

  server.on('request', (incoming: IncomingMessage, response: ServerResponse) => {
    handle(incoming, response).catch((error: unknown) => {
      // A sandbox bug or a client that went away mid-request: answer 500 if still possible, never crash.
      if (!response.headersSent && !response.destroyed) {
        send(response, jsonReply(500, { error: 'Internal Server Error', message: error instanceof Error ? error.message : String(error) }));
      } else {
        response.destroy();
      }
    });
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping.abort(); // ends delays and oversized streams
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.all(platforms.map((platform) => platform.settle()));
    })();
    return stopped;
  };

  return {
    url: context.url,
    lifetimes: context.lifetimes,
    demo: context.demo,
    dataTrailsApplications: dataTrails.applications,
    agents: agents.agents,
    get clockSkewMs() {
      return agents.clock.skewMs;
    },
    set clockSkewMs(skewMs: number) {
      if (!Number.isFinite(skewMs)) throw new TypeError('clockSkewMs must be a finite number of milliseconds');
      agents.clock.skewMs = skewMs;
    },
    fault(endpoint, fault) {
      checkEndpoint(endpoint);
      faults.set(endpoint, fault);
    },
    clearFaults(endpoint) {
      if (endpoint !== undefined) checkEndpoint(endpoint);
      faults.clear(endpoint);
    },
    calls(endpoint) {
      checkEndpoint(endpoint);
      return callCounts.get(endpoint) ?? 0;
    },
    resetCalls() {
      callCounts.clear();
    },
    revokeTokens() {
      for (const platform of platforms) platform.revoke();
    },
    stop,
  };
}

/** A misspelt endpoint name in a test would otherwise count 0 calls and never fault. */
function checkEndpoint(endpoint: EndpointName): void {
  if (!(ENDPOINT_NAMES as readonly string[]).includes(endpoint)) {
    throw new TypeError(`unknown sandbox endpoint "${endpoint}"; known: ${ENDPOINT_NAMES.join(', ')}`);
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function decodePath(pathname: string): string | undefined {
  try {
    return decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
}

/** The whole request body, or undefined as soon as it is known to exceed `limit`. */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (Number(request.headers['content-length'] ?? 0) > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    if (request.destroyed) return reject(new Error('the client went away before sending the whole request'));
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        request.off('data', onData);
        resolve(undefined);
      } else {
        chunks.push(chunk);
      }
    };
    request.on('data', onData);
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
    request.on('close', () => {
      if (!request.complete) reject(new Error('the client went away before sending the whole request'));
    });
  });
}

function send(response: ServerResponse, reply: Reply): void {
  if (response.destroyed || response.headersSent) return;
  if (reply.text !== undefined) {
    response.writeHead(reply.status, reply.headers);
    response.end(reply.text);
  } else if (reply.json === undefined) {
    response.writeHead(reply.status, reply.headers);
    response.end();
  } else {
    response.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    response.end(JSON.stringify(reply.json));
  }
}
