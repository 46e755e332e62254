import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { ApiRequest } from '../core/platform-connection.js';
import {
  ACTIONS,
  buildCreateRequest,
  buildDeleteRequest,
  buildGetRequest,
  buildListRequest,
  buildRegenerateSecretRequest,
  buildUpdateRequest,
  checkAction,
  checkApplicationChanges,
  checkListQuery,
  checkNewApplication,
  identityOf,
  isAction,
  listAllApplications,
  parseIdentity,
  readApplicationResponse,
  readDeleteResponse,
  readListResponse,
  type Application,
  type ApplicationAction,
  type ResponseContext,
} from '../platforms/datatrails-applications.js';
import { handleInput, redactorFor, resolvePlatform, StatusReporter } from './action-node.js';
import type { Node, NodeAPI, NodeDefinition, NodeMessage } from './node-red.js';

/**
 * "app registration": manages the DataTrails tenancy's app registrations
 * (custom integrations) with the token of a DataTrails config node. Every
 * input is checked before any request is sent; `create` and
 * `regenerate-secret` output the new secret (the only time DataTrails shows
 * it), which the status, logs and errors never carry.
 */
export default function register(RED: NodeAPI): void {
  RED.nodes.registerType('iiot-app-registration', function (this: Node, definition: NodeDefinition) {
    RED.nodes.createNode(this, definition);
    const status = new StatusReporter(this);
    const nodeAction = typeof definition.action === 'string' && definition.action ? definition.action : 'list';
    // The node only speaks to DataTrails; `platform` is kept for consistency with the other action nodes.
    const platformDefinition: NodeDefinition = { ...definition, platform: definition.platform || 'datatrails' };

    handleInput(
      this,
      status,
      async (msg, send) => {
        const action = actionOf(nodeAction, msg);
        const { connection } = resolvePlatform(RED, platformDefinition, ['datatrails']);
        const ctx: ResponseContext = { action, ...clientIdOf(RED, definition) };
        const request = (req: ApiRequest) => connection.request(req);
        // Everything below checks its input before the first request: a refused message sends nothing.
        const begin = () => {
          if (!connection.credential.peek()) status.fetching();
        };

        switch (action) {
          case 'list': {
            const { query, single } = checkListQuery({ pageSize: msg.pageSize, pageToken: msg.pageToken, displayName: msg.displayName });
            begin();
            if (single) {
              const page = readListResponse(await request(buildListRequest(query)), ctx);
              msg.payload = page.applications;
              msg.nextPageToken = page.nextPageToken;
            } else {
              msg.payload = await listAllApplications(request, { displayName: query.displayName, clientId: ctx.clientId });
            }
            break;
          }
          case 'create': {
            const application = checkNewApplication(msg.payload);
            begin();
            output(msg, readApplicationResponse(await request(buildCreateRequest(application)), ctx));
            break;
          }
          case 'get': {
            const uuid = parseIdentity(msg.identity);
            begin();
            output(msg, readApplicationResponse(await request(buildGetRequest(uuid)), { ...ctx, uuid }));
            break;
          }
          case 'update': {
            const uuid = parseIdentity(msg.identity);
            const changes = checkApplicationChanges(msg.payload);
            begin();
            output(msg, readApplicationResponse(await request(buildUpdateRequest(uuid, changes)), { ...ctx, uuid }));
            break;
          }
          case 'delete': {
            const uuid = parseIdentity(msg.identity);
            begin();
            readDeleteResponse(await request(buildDeleteRequest(uuid)), { ...ctx, uuid });
            msg.identity = identityOf(uuid);
            msg.payload = { identity: identityOf(uuid), deleted: true };
            break;
          }
          case 'regenerate-secret': {
            const uuid = parseIdentity(msg.identity);
            begin();
            output(msg, readApplicationResponse(await request(buildRegenerateSecretRequest(uuid)), { ...ctx, uuid }));
            break;
          }
        }
        status.authenticated();
        send(msg);
      },
      redactorFor(RED, platformDefinition),
    );
  });
}

function actionOf(nodeAction: string, msg: NodeMessage): ApplicationAction {
  if (nodeAction === 'msg') return checkAction(msg.action, 'msg.action');
  if (!isAction(nodeAction)) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the node's action "${nodeAction.slice(0, 40)}" is unknown: open the node and choose one of ${ACTIONS.join(', ')}, or "set by msg.action"`,
    );
  }
  return nodeAction;
}

/** The application is the payload; msg.identity names it, so that the next app registration node can act on it. */
function output(msg: NodeMessage, application: Application): void {
  msg.payload = application;
  msg.identity = application.identity;
}

/** The config node's client id (not a secret), for the advice on a 403. */
function clientIdOf(RED: NodeAPI, definition: NodeDefinition): { clientId?: string } {
  const id = definition.dataTrails;
  const config = typeof id === 'string' && id ? (RED.nodes.getNode(id) as Node | null) : null;
  const clientId = config?.credentials?.clientId?.trim();
  return clientId ? { clientId } : {};
}
