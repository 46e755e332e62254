import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { PlatformConnection } from '../core/platform-connection.js';
import { eTagOf, readAgentApiResponse, requests } from '../platforms/insights-hub-agent/management.js';
import { handleInput, redactorFor, resolvePlatform, StatusReporter } from './action-node.js';
import type { PlatformConfigNode } from './config-node.js';
import { headersOf, mergeHeaders } from './headers.js';
import type { AgentConfigNode } from './iiot-insights-hub-agent.js';
import type { AgentLifecycle } from '../platforms/insights-hub-agent/lifecycle.js';
import type { Node, NodeAPI, NodeDefinition, NodeMessage } from './node-red.js';

/**
 * "onboard agent": the Insights Hub agent life cycle. Agent-side actions use
 * the agent's own credentials (an agent config node); app-side ones an app
 * token: the node's own Insights Hub app config node, else the one its agent
 * config references.
 */
const AGENT_ACTIONS = ['onboard', 'rotate', 'status', 'token', 'get-data-source-config', 'put-data-source-config'] as const;
const APP_ACTIONS = ['create', 'boarding-config', 'boarding-status', 'offboard', 'delete'] as const;
type AppAction = (typeof APP_ACTIONS)[number];
type Action = (typeof AGENT_ACTIONS)[number] | AppAction;
const ACTIONS: readonly string[] = [...AGENT_ACTIONS, ...APP_ACTIONS];

export default function register(RED: NodeAPI): void {
  RED.nodes.registerType('iiot-agent', function (this: Node, definition: NodeDefinition) {
    RED.nodes.createNode(this, definition);
    const status = new StatusReporter(this);
    const platformDefinition = { ...definition, platform: 'insights-hub-agent' };
    handleInput(
      this,
      status,
      async (msg, send) => {
        const action = actionOf(definition.action, msg);
        if (isAppAction(action)) {
          // The app token alone will do: a flow can create its first agent before any agent config node exists.
          const { app, own } = resolveAppSide(RED, definition, action);
          if (!app.credential.peek()) status.fetching();
          msg.payload = await appSide(app, action, msg, own?.agent.clientId);
          // The new agent's id, for the next app-side node (boarding-config, …) in the flow.
          if (action === 'create') msg.agentId = (msg.payload as { id?: unknown }).id;
          // Offboarding or deleting this node's own agent retires its stored credentials.
          if (own && (action === 'offboard' || action === 'delete') && agentIdOf(msg, own.agent.clientId) === own.agent.clientId) {
            await own.agent.markOffboarded();
            own.connection.credential.drop();
          }
          status.authenticated();
          send(msg);
          return;
        }
        const { connection } = resolvePlatform(RED, platformDefinition);
        const config = RED.nodes.getNode(String(definition.insightsHubAgent)) as AgentConfigNode;
        const agent = config.agent;
        if (!agent) {
          throw (
            config.configError ??
            new IiotAuthError(ErrorCode.CONFIG_MISSING, 'the Insights Hub agent config node is not ready: deploy again, and check the log')
          );
        }
        if (!connection.credential.peek() && action !== 'status') status.fetching();
        switch (action) {
          case 'onboard': {
            const { alreadyOnboarded } = await agent.onboard(connection.http);
            msg.payload = { ...(await agent.status()), alreadyOnboarded };
            break;
          }
          case 'rotate':
            await agent.rotateNow(connection.http);
            await connection.renewToken(); // the new credentials must produce a token before the old ones are let go
            msg.payload = await agent.status();
            break;
          case 'status': {
            const token = connection.credential.state;
            msg.payload = { ...(await agent.status()), ...(token.expiresAt ? { tokenExpiresAt: new Date(token.expiresAt).toISOString() } : {}) };
            break;
          }
          case 'token': {
            const headers = headersOf(msg.headers); // refused before a token is fetched, as get token does
            const token = await connection.getToken();
            msg.headers = mergeHeaders(headers, token.headers);
            msg.token = {
              platform: 'insights-hub-agent',
              type: token.type,
              value: token.value,
              expiresAt: new Date(token.expiresAt).toISOString(),
              headers: { ...token.headers },
            };
            break;
          }
          case 'get-data-source-config': {
            const res = await connection.request(requests.getDataSourceConfig(agent.clientId));
            msg.payload = readAgentApiResponse(res, 'reading the data source configuration');
            msg.eTag = eTagOf(res, msg.payload as Record<string, unknown>);
            break;
          }
          case 'put-data-source-config': {
            const eTag = msg.eTag !== undefined && msg.eTag !== '' ? String(msg.eTag) : await currentDataSourceETag(connection, agent.clientId);
            const res = await connection.request(requests.putDataSourceConfig(agent.clientId, eTag, msg.payload));
            msg.payload = readAgentApiResponse(res, 'saving the data source configuration');
            msg.eTag = eTagOf(res, msg.payload as Record<string, unknown>);
            break;
          }
        }
        status.authenticated();
        send(msg);
      },
      (text) => redactorFor(RED, platformDefinition)(appRedactor(RED, definition)(text)),
    );
  });
}

function actionOf(configured: unknown, msg: NodeMessage): Action {
  const action = configured === 'msg' || !configured ? msg.action : configured;
  if (typeof action !== 'string' || !ACTIONS.includes(action)) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `action "${String(action ?? '')}" is not one of ${ACTIONS.join(', ')}: set it in the node, or in msg.action`,
    );
  }
  return action as Action;
}

async function currentDataSourceETag(connection: PlatformConnection, agentId: string): Promise<string> {
  const res = await connection.request(requests.getDataSourceConfig(agentId));
  if (res.statusCode === 404) return '0';
  return eTagOf(res, readAgentApiResponse(res, "reading the data source configuration's eTag"));
}

/** The agent an app-side action is for: msg.agentId, or the node's own. Anything but a string is refused, never taken as "the own agent". */
function agentIdOf(msg: NodeMessage, ownId: string | undefined): string {
  if (msg.agentId === undefined || msg.agentId === null || msg.agentId === '') {
    if (ownId) return ownId;
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      "msg.agentId is missing: set it to the agent's id (create outputs it as msg.agentId), or select an agent config node in this node",
    );
  }
  if (typeof msg.agentId !== 'string') {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `msg.agentId is a ${typeof msg.agentId}: set it to the agent's id (a string), or leave it out for this node's own agent`,
    );
  }
  return msg.agentId;
}

function isAppAction(action: Action): action is AppAction {
  return (APP_ACTIONS as readonly string[]).includes(action);
}

/** The agent config node the node selects, or null when none is. */
function agentConfigOf(RED: NodeAPI, definition: NodeDefinition): AgentConfigNode | null {
  const id = definition.insightsHubAgent;
  return typeof id === 'string' && id ? (RED.nodes.getNode(id) as AgentConfigNode | null) : null;
}

/** The app config node for the app-side calls: the node's own, else the one its agent config references. */
function appConfigIdOf(definition: NodeDefinition, agentConfig: AgentConfigNode | null): string {
  const own = definition.insightsHubApp;
  return typeof own === 'string' && own ? own : (agentConfig?.appConfigId ?? '');
}

/**
 * What an app-side action uses: the app's connection, and the node's own
 * agent when an agent config node is selected and usable (its id is the
 * default for msg.agentId).
 */
function resolveAppSide(
  RED: NodeAPI,
  definition: NodeDefinition,
  action: AppAction,
): { app: PlatformConnection; own?: { agent: AgentLifecycle; connection: PlatformConnection } } {
  const agentConfig = agentConfigOf(RED, definition);
  const appId = appConfigIdOf(definition, agentConfig);
  const app = appId ? (RED.nodes.getNode(appId) as PlatformConfigNode | null) : null;
  if (!app) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_MISSING,
      `the "${action}" action needs an Insights Hub app config: select one in this node (or in its agent config node)`,
    );
  }
  if (app.configError) throw app.configError;
  if (!app.connection) throw new IiotAuthError(ErrorCode.CONFIG_MISSING, 'the Insights Hub app config node is not ready: deploy again, and check the log');
  const agent = agentConfig && !agentConfig.configError ? agentConfig.agent : undefined;
  const connection = agentConfig?.connection;
  return { app: app.connection, ...(agent && connection ? { own: { agent, connection } } : {}) };
}

/** Redacts with the secrets of the app config node the app-side calls use. */
function appRedactor(RED: NodeAPI, definition: NodeDefinition): (text: string) => string {
  return (text) => {
    const appId = appConfigIdOf(definition, agentConfigOf(RED, definition));
    const app = appId ? (RED.nodes.getNode(appId) as PlatformConfigNode | null) : null;
    return app?.connection ? app.connection.redact(text) : text;
  };
}

/** The calls made with an Insights Hub app's token. */
async function appSide(connection: PlatformConnection, action: AppAction, msg: NodeMessage, ownId: string | undefined): Promise<unknown> {
  const agentId = action === 'create' ? '' : agentIdOf(msg, ownId);
  switch (action) {
    case 'create':
      return readAgentApiResponse(await connection.request(requests.create(msg.payload)), 'creating the agent');
    case 'boarding-config':
      return readAgentApiResponse(await connection.request(requests.boardingConfig(agentId)), 'reading the boarding configuration');
    case 'boarding-status':
      return readAgentApiResponse(await connection.request(requests.boardingStatus(agentId)), 'reading the boarding status');
    case 'offboard':
      return readAgentApiResponse(await connection.request(requests.offboard(agentId)), 'offboarding the agent');
    case 'delete': {
      const current = await connection.request(requests.get(agentId));
      const eTag = eTagOf(current, readAgentApiResponse(current, 'reading the agent before deleting it'));
      readAgentApiResponse(await connection.request(requests.delete(agentId, eTag)), 'deleting the agent');
      return { agentId, deleted: true };
    }
  }
}
