// Fault injection: one fault per endpoint, applied before the normal handler.

import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EndpointName, Fault } from './types.js';

/** DataTrails' header: seconds until the rate limit resets (datatrails-python archivist/constants.py HEADERS_RETRY_AFTER). */
const DATATRAILS_RATE_LIMIT_RESET = 'Archivist-Rate-Limit-Reset';
const DEFAULT_OVERSIZED_BYTES = 64 * 1024 * 1024;
const OVERSIZED_CHUNK = Buffer.alloc(64 * 1024, 'x');

export class FaultTable {
  private readonly active = new Map<EndpointName, { fault: Fault; remaining: number | undefined }>();

  set(endpoint: EndpointName, fault: Fault): void {
    checkFault(fault);
    if (fault.kind === 'rateLimited' && !endpoint.startsWith('dataTrails.')) {
      throw new TypeError(`rateLimited fault: it imitates DataTrails' 429, not ${endpoint}'s; use a status fault with the headers that platform sends`);
    }
    this.active.set(endpoint, { fault: { ...fault }, remaining: fault.times });
  }

  clear(endpoint?: EndpointName): void {
    if (endpoint === undefined) this.active.clear();
    else this.active.delete(endpoint);
  }

  /** The fault for this request, if any; counts it down and forgets it when used up. */
  take(endpoint: EndpointName): Fault | undefined {
    const entry = this.active.get(endpoint);
    if (!entry) return undefined;
    if (entry.remaining !== undefined) {
      entry.remaining -= 1;
      if (entry.remaining <= 0) this.active.delete(endpoint);
    }
    return entry.fault;
  }
}

/** Catches a mistyped fault in a test at the call, not as a puzzling answer later. */
function checkFault(fault: Fault): void {
  const isCount = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n > 0;
  if (fault.times !== undefined && !isCount(fault.times)) throw new TypeError('fault.times must be a positive integer');
  switch (fault.kind) {
    case 'refuse':
    case 'malformed':
    case 'dropResponse':
      return;
    case 'delay':
      if (!(Number.isFinite(fault.ms) && fault.ms >= 0)) throw new TypeError('delay fault: ms must be a number >= 0');
      return;
    case 'status':
      if (!(Number.isInteger(fault.status) && fault.status >= 200 && fault.status <= 599)) {
        throw new TypeError('status fault: status must be an integer from 200 to 599');
      }
      return;
    case 'oversized':
      if (fault.bytes !== undefined && !isCount(fault.bytes)) throw new TypeError('oversized fault: bytes must be a positive integer');
      return;
    case 'rateLimited':
      if (!(Number.isFinite(fault.resetSeconds) && fault.resetSeconds >= 0)) throw new TypeError('rateLimited fault: resetSeconds must be a number >= 0');
      return;
    default:
      throw new TypeError(`unknown fault kind: ${(fault as { kind: unknown }).kind}`);
  }
}

/**
 * Acts out a fault. Returns 'continue' when the normal handler should still
 * answer (after a delay), 'answered' when the fault took care of the request,
 * 'drop' when the handler should process the request but its answer must be
 * replaced by a destroyed socket (see `dropConnection`).
 * `stopping` aborts a delay or a stream when the sandbox stops.
 */
export async function applyFault(
  fault: Fault,
  request: IncomingMessage,
  response: ServerResponse,
  stopping: AbortSignal,
): Promise<'continue' | 'answered' | 'drop'> {
  switch (fault.kind) {
    case 'dropResponse':
      return 'drop';
    case 'refuse':
      request.socket.destroy();
      return 'answered';
    case 'delay':
      try {
        await sleep(fault.ms, undefined, { signal: stopping });
        return 'continue';
      } catch {
        return 'answered'; // the sandbox is stopping and destroys the socket
      }
    case 'status':
      sendStatusFault(response, fault.status, fault.headers ?? {}, fault.body);
      return 'answered';
    case 'malformed':
      // Looks like the start of a token response, cut off: valid content type, invalid JSON.
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOi');
      return 'answered';
    case 'oversized':
      await streamOversizedBody(response, fault.bytes ?? DEFAULT_OVERSIZED_BYTES, stopping);
      return 'answered';
    case 'rateLimited':
      // The seconds as the SDK parses them (float); the body is grpc-gateway's, code 8 = RESOURCE_EXHAUSTED.
      sendStatusFault(
        response,
        429,
        { [DATATRAILS_RATE_LIMIT_RESET]: String(fault.resetSeconds) },
        JSON.stringify({ code: 8, message: 'rate limit exceeded, retry after the time in Archivist-Rate-Limit-Reset', details: [] }),
      );
      return 'answered';
  }
}

/** A lost response: the request was processed, but the client sees the connection close without an answer. */
export function dropConnection(request: IncomingMessage): void {
  request.socket.destroy();
}

function sendStatusFault(response: ServerResponse, status: number, headers: Record<string, string>, body: string | undefined): void {
  const text = body ?? JSON.stringify({ error: STATUS_CODES[status] ?? 'Error', message: 'Fault injected by the sandbox' });
  const hasContentType = Object.keys(headers).some((name) => name.toLowerCase() === 'content-type');
  const contentType = looksLikeJson(text) ? 'application/json' : 'text/plain; charset=utf-8';
  response.writeHead(status, hasContentType || text === '' ? headers : { 'content-type': contentType, ...headers });
  response.end(text);
}

function looksLikeJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Streams `{"padding":"xxx…"}` of exactly `bytes` bytes (just x's when too small
 * for the frame), chunked without a content-length so that a client must
 * enforce its limit while reading. Stops when the client goes away.
 */
async function streamOversizedBody(response: ServerResponse, bytes: number, stopping: AbortSignal): Promise<void> {
  const [head, tail] = bytes >= 16 ? ['{"padding":"', '"}'] : ['', ''];
  response.writeHead(200, { 'content-type': 'application/json' });
  response.write(head);
  let remaining = bytes - head.length - tail.length;
  while (remaining > 0) {
    if (response.destroyed || stopping.aborted) return;
    const chunk = remaining >= OVERSIZED_CHUNK.length ? OVERSIZED_CHUNK : OVERSIZED_CHUNK.subarray(0, remaining);
    remaining -= chunk.length;
    if (!response.write(chunk)) await drainedOrClosed(response);
  }
  if (!response.destroyed) response.end(tail);
}

function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
  });
}
