import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { Token } from '../core/token.js';
import { handleInput, redactorFor, resolvePlatform, StatusReporter } from './action-node.js';
import { headersOf, mergeHeaders } from './headers.js';
import type { Node, NodeAPI, NodeDefinition } from './node-red.js';

/**
 * "get token": puts the platform's auth on the message, for a core http
 * request node (or anything else) to use.
 */
export default function register(RED: NodeAPI): void {
  RED.nodes.registerType('iiot-token', function (this: Node, definition: NodeDefinition) {
    RED.nodes.createNode(this, definition);
    const status = new StatusReporter(this);
    handleInput(
      this,
      status,
      async (msg, send) => {
        const { id, connection } = resolvePlatform(RED, definition);
        const headers = headersOf(msg.headers); // headers a request could not send: refused before a token is fetched
        if (!connection.credential.peek()) status.fetching();
        const token = await connection.getToken();
        msg.headers = mergeHeaders(headers, { ...token.headers, ...(await proofFor(token, msg)) });
        msg.token = {
          platform: id,
          type: token.type,
          value: token.value,
          expiresAt: new Date(token.expiresAt).toISOString(),
          headers: { ...token.headers },
        };
        status.authenticated();
        send(msg);
      },
      redactorFor(RED, definition),
    );
  });
}

/**
 * A DPoP-bound token (RFC 9449) works only with a proof made for the one
 * request that follows: its method and URL are taken from msg.method and
 * msg.url, as a core http request node will send them.
 */
async function proofFor(token: Token, msg: Record<string, unknown>): Promise<Record<string, string>> {
  if (!token.proof) return {};
  let url: URL | undefined;
  try {
    url = typeof msg.url === 'string' ? new URL(msg.url) : undefined;
  } catch {
    url = undefined;
  }
  const method = typeof msg.method === 'string' && msg.method ? msg.method : 'GET';
  if (!url) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      'the token is DPoP-bound: each request needs a proof made for its method and URL; set msg.url (absolute) and msg.method before this node, or use the authenticated request node',
    );
  }
  return { [token.proof.header]: (await token.proof.make(method, url)).value };
}
