import Mustache from 'mustache';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { handleInput, redactorFor, resolvePlatform, StatusReporter } from './action-node.js';
import { headersOf } from './headers.js';
import type { Node, NodeAPI, NodeDefinition, NodeMessage } from './node-red.js';
import { settingsOf } from './runtime.js';

/**
 * "authenticated request": an HTTP request with the platform's auth applied,
 * in the core http request node's message shape. A non-2xx answer is a normal
 * output; a transport failure or timeout goes to done(err).
 */
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
/** What msg.payload becomes: text, a Buffer, or parsed JSON. */
type ReturnAs = 'txt' | 'bin' | 'obj';

export default function register(RED: NodeAPI): void {
  RED.nodes.registerType('iiot-request', function (this: Node, definition: NodeDefinition) {
    RED.nodes.createNode(this, definition);
    const status = new StatusReporter(this);
    const nodeMethod = String(definition.method || 'GET').toUpperCase();
    const nodeUrl = typeof definition.url === 'string' ? definition.url.trim() : '';
    const ret: ReturnAs = definition.ret === 'bin' || definition.ret === 'obj' ? definition.ret : 'txt';
    const nodeTimeout = Number(definition.timeout) > 0 ? Number(definition.timeout) : settingsOf(RED).requestTimeoutMs;

    handleInput(
      this,
      status,
      async (msg, send) => {
        const { connection } = resolvePlatform(RED, definition);
        // The whole message is checked before a token is fetched or anything sent: its URL
        // (resolved, and refused with userinfo, by connection.request) and its headers.
        const method = methodOf(nodeMethod, msg);
        const url = urlOf(nodeUrl, msg, (text) => this.warn(text));
        const timeoutMs = Number(msg.requestTimeout) > 0 ? Number(msg.requestTimeout) : nodeTimeout;
        const headers = requestHeadersOf(msg.headers);
        const body = method === 'GET' || method === 'HEAD' ? undefined : bodyOf(msg.payload, headers);

        if (!connection.credential.peek()) status.fetching();
        const response = await connection.request({ method, url, headers, body, timeoutMs });

        msg.statusCode = response.statusCode;
        msg.headers = response.headers;
        msg.responseUrl = response.url;
        msg.payload = payloadOf(response.body, ret, (text) => this.warn(text));
        status.httpStatus(response.statusCode);
        send(msg);
      },
      redactorFor(RED, definition),
    );
  });
}

function methodOf(nodeMethod: string, msg: NodeMessage): string {
  if (nodeMethod !== 'USE') return nodeMethod;
  const method = typeof msg.method === 'string' ? msg.method.toUpperCase() : '';
  if (!METHODS.includes(method)) {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, `msg.method "${String(msg.method ?? '')}" is not an HTTP method: set it to one of ${METHODS.join(', ')}`);
  }
  return method;
}

/** The node's URL (with {{mustache}} from msg, as in the core node) wins over msg.url. */
function urlOf(nodeUrl: string, msg: NodeMessage, warn: (text: string) => void): string {
  if (nodeUrl) {
    if (typeof msg.url === 'string' && msg.url && msg.url !== nodeUrl) warn('msg.url is ignored: this node has its own URL set');
    if (!nodeUrl.includes('{{')) return nodeUrl;
    try {
      return Mustache.render(nodeUrl, msg);
    } catch {
      throw new IiotAuthError(ErrorCode.CONFIG_INVALID, "the node's URL is not a valid template (an unclosed {{ }}, say): fix it in the node");
    }
  }
  if (typeof msg.url !== 'string' || msg.url.trim() === '') {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      "no URL: set the node's URL, or msg.url (relative to the platform's base URL, e.g. /api/identitymanagement/v3/Users)",
    );
  }
  return msg.url;
}

/**
 * The caller's request headers, less those that describe a connection or a
 * body rather than a request: a msg that went through another http node still
 * carries its response's content-length, which would corrupt this request.
 */
const NOT_FORWARDED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'host', 'upgrade', 'te', 'trailer']);
function requestHeadersOf(value: unknown): Record<string, string> {
  const headers = headersOf(value);
  for (const name in headers) if (NOT_FORWARDED.has(name.toLowerCase())) delete headers[name];
  return headers;
}

/** The request body, as the core node sends it: Buffers and strings as they are, anything else as JSON. */
function bodyOf(payload: unknown, headers: Record<string, string>): string | Buffer | undefined {
  if (payload === undefined || payload === null) return undefined;
  if (Buffer.isBuffer(payload) || typeof payload === 'string') return payload;
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  try {
    return JSON.stringify(payload);
  } catch {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      'msg.payload cannot be sent as JSON (it refers to itself, or holds a BigInt): send plain data, a string or a Buffer',
    );
  }
}

function payloadOf(body: Buffer, ret: ReturnAs, warn: (text: string) => void): unknown {
  if (ret === 'bin') return body;
  const text = body.toString('utf8');
  if (ret === 'txt' || text.trim() === '') return text;
  try {
    return JSON.parse(text);
  } catch {
    warn('the response is not JSON: msg.payload holds it as text');
    return text;
  }
}
