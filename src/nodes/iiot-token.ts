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
        msg.headers = mergeHeaders(headers, token.headers);
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
