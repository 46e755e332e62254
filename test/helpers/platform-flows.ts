import fs from 'node:fs';
import path from 'node:path';
import { declaredConfigNode } from '../../src/nodes/config-node.js';
import type { NodeAPI } from '../../src/nodes/node-red.js';
import { PLATFORM_DECLARATIONS, platformById } from '../../src/platforms/index.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { uid, type FlowNode } from './flow.js';

/**
 * Every platform's config node module, from the declarations: its own
 * src/nodes/<type>.ts, or the one registered from the declaration alone (as
 * the generated Node-RED entry does).
 */
export const CONFIG_NODE_MODULES: Array<(RED: NodeAPI) => void> = PLATFORM_DECLARATIONS.map((p) => {
  const own = path.join(__dirname, '..', '..', 'src', 'nodes', `${p.configType}.js`);
  return fs.existsSync(own) ? (require(own) as { default: (RED: NodeAPI) => void }).default : declaredConfigNode(p.configType);
});

/** The platform, config type and action-node property of a case, as its declaration says. */
function declared(id: string): Pick<PlatformCase, 'platform' | 'configType' | 'property'> {
  const p = platformById(id);
  if (!p) throw new Error(`no platform declares ${id}`);
  return { platform: p.id as PlatformCase['platform'], configType: p.configType, property: p.property };
}

/**
 * Per platform: the config node (pointing at the sandbox, with its demo
 * credentials), the action-node property that references it, an API path the
 * platform protects, the sandbox's endpoint names, and its secrets.
 */
export interface PlatformCase {
  platform: 'insights-hub-app' | 'insights-hub-service' | 'cisco-ei' | 'datatrails' | 'mbp' | 'oauth2' | 'insights-hub-agent';
  configType: string;
  property: string;
  apiPath: string;
  tokenEndpoint: Parameters<Sandbox['calls']>[0];
  apiEndpoint: Parameters<Sandbox['calls']>[0];
  lifetime: keyof Sandbox['lifetimes'];
  /** The platform's base URL in the sandbox: API paths are relative to it. */
  baseUrl(sandbox: Sandbox): string;
  config(sandbox: Sandbox): Record<string, unknown>;
  credentials(sandbox: Sandbox): Record<string, string>;
  wrongCredentials(sandbox: Sandbox): Record<string, string>;
  secrets(sandbox: Sandbox): string[];
}

export const PLATFORM_CASES: PlatformCase[] = [
  {
    ...declared('insights-hub-app'),
    apiPath: '/api/identitymanagement/v3/Users',
    tokenEndpoint: 'insightsHub.token',
    apiEndpoint: 'insightsHub.users',
    lifetime: 'insightsHubAppToken',
    baseUrl: (s) => s.url,
    config: (s) => {
      const { appName, appVersion, hostTenant, userTenant } = s.demo.insightsHubApp;
      return { gateway: s.url, appName, appVersion, hostTenant, userTenant };
    },
    credentials: (s) => ({ clientId: s.demo.insightsHubApp.clientId, clientSecret: s.demo.insightsHubApp.clientSecret }),
    wrongCredentials: (s) => ({ clientId: s.demo.insightsHubApp.clientId, clientSecret: 'wrong-ih-secret-0000' }),
    secrets: (s) => [s.demo.insightsHubApp.clientSecret],
  },
  {
    ...declared('insights-hub-service'),
    apiPath: '/api/identitymanagement/v3/Users',
    tokenEndpoint: 'insightsHubService.token',
    apiEndpoint: 'insightsHub.users',
    lifetime: 'insightsHubServiceToken',
    baseUrl: (s) => s.url,
    config: (s) => ({ gateway: s.url, tenant: s.demo.insightsHubService.tenant }),
    credentials: (s) => ({ clientId: s.demo.insightsHubService.clientId, clientSecret: s.demo.insightsHubService.clientSecret }),
    wrongCredentials: (s) => ({ clientId: s.demo.insightsHubService.clientId, clientSecret: 'wrong-svc-secret-0000' }),
    secrets: (s) => [s.demo.insightsHubService.clientSecret],
  },
  {
    ...declared('cisco-ei'),
    apiPath: '/nbapi/ei/v1/agents',
    tokenEndpoint: 'ciscoEi.token',
    apiEndpoint: 'ciscoEi.agents',
    lifetime: 'ciscoEiAccessToken',
    baseUrl: (s) => s.url,
    config: (s) => ({ server: s.url, tenantId: s.demo.ciscoEi.tenantId }),
    credentials: (s) => ({ username: s.demo.ciscoEi.username, password: s.demo.ciscoEi.password }),
    wrongCredentials: (s) => ({ username: s.demo.ciscoEi.username, password: 'wrong-ei-password-0000' }),
    secrets: (s) => [s.demo.ciscoEi.password],
  },
  {
    ...declared('datatrails'),
    apiPath: '/archivist/v2/assets',
    tokenEndpoint: 'dataTrails.token',
    apiEndpoint: 'dataTrails.assets',
    lifetime: 'dataTrailsToken',
    baseUrl: (s) => s.url,
    config: (s) => ({ url: s.url }),
    credentials: (s) => ({ clientId: s.demo.dataTrails.clientId, clientSecret: s.demo.dataTrails.clientSecret }),
    wrongCredentials: (s) => ({ clientId: s.demo.dataTrails.clientId, clientSecret: 'wrong-dt-secret-0000' }),
    secrets: (s) => [s.demo.dataTrails.clientSecret],
  },
  {
    ...declared('mbp'),
    apiPath: '/api/devices',
    tokenEndpoint: 'mbp.login',
    apiEndpoint: 'mbp.devices',
    lifetime: 'mbpSession',
    baseUrl: (s) => `${s.url}/mbp`,
    config: (s) => ({ url: `${s.url}/mbp` }),
    credentials: (s) => ({ username: s.demo.mbp.username, password: s.demo.mbp.password }),
    wrongCredentials: (s) => ({ username: s.demo.mbp.username, password: 'wrong-mbp-password-0000' }),
    secrets: (s) => [s.demo.mbp.password],
  },
  {
    ...declared('oauth2'),
    apiPath: '/items',
    tokenEndpoint: 'oauth2.token',
    apiEndpoint: 'oauth2.items',
    lifetime: 'oauth2Token',
    baseUrl: (s) => `${s.url}/oauth2/api`,
    config: (s) => ({ tokenUrl: `${s.url}/oauth2/token`, apiUrl: `${s.url}/oauth2/api`, clientAuth: 'body', scope: 'read' }),
    credentials: (s) => ({ clientId: s.demo.oauth2.clientId, clientSecret: s.demo.oauth2.clientSecret }),
    wrongCredentials: (s) => ({ clientId: s.demo.oauth2.clientId, clientSecret: 'wrong-o2-secret-0000' }),
    secrets: (s) => [s.demo.oauth2.clientSecret],
  },
];

/**
 * The Insights Hub agent as a case (not in PLATFORM_CASES: it needs an agent
 * created in this sandbox): a new SHARED_SECRET agent whose boarding
 * configuration (with its IAT) is the config node's credential; the API path
 * is its data source configuration. Onboarding happens on first use, and the
 * credentials it produces live in the agent store (iiotAuth.agentStateDir),
 * so secrets() names only the IAT.
 */
export function agentCase(sandbox: Sandbox): PlatformCase & { agentId: string } {
  const agent = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
  const boarding = sandbox.agents.boardingConfiguration(agent.id);
  return {
    ...declared('insights-hub-agent'),
    agentId: agent.id,
    apiPath: `/api/agentmanagement/v3/agents/${agent.id}/dataSourceConfiguration`,
    tokenEndpoint: 'agents.token',
    apiEndpoint: 'agents.dataSourceConfig',
    lifetime: 'agentToken',
    baseUrl: (s) => s.url,
    config: () => ({ profile: 'SHARED_SECRET', app: '' }),
    credentials: () => ({ boardingConfig: JSON.stringify(boarding) }),
    wrongCredentials: () => ({ boardingConfig: JSON.stringify({ ...boarding, content: { ...boarding.content, iat: 'wrong-iat-0000' } }) }),
    secrets: () => [boarding.content.iat],
  };
}

export interface PlatformFlow {
  ids: { config: string; token: string; request: string; out: string; errors: string };
  nodes: FlowNode[];
  credentials: Record<string, Record<string, string>>;
}

/** config → get token and authenticated request → one collector; a Catch node → another. */
export function platformFlow(
  c: PlatformCase,
  sandbox: Sandbox,
  options: { config?: Record<string, unknown>; request?: Record<string, unknown>; credentials?: Record<string, string> } = {},
): PlatformFlow {
  const ids = { config: uid('cfg'), token: uid('tok'), request: uid('req'), out: uid('out'), errors: uid('err') };
  const nodes: FlowNode[] = [
    { id: ids.config, type: c.configType, ...c.config(sandbox), ...options.config },
    { id: ids.token, type: 'iiot-token', platform: c.platform, [c.property]: ids.config, wires: [[ids.out]] },
    {
      id: ids.request,
      type: 'iiot-request',
      platform: c.platform,
      [c.property]: ids.config,
      method: 'GET',
      url: c.apiPath,
      ret: 'obj',
      ...options.request,
      wires: [[ids.out]],
    },
    { id: ids.out, type: 'helper' },
    { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
    { id: ids.errors, type: 'helper' },
  ];
  return { ids, nodes, credentials: { [ids.config]: options.credentials ?? c.credentials(sandbox) } };
}

/** An Insights Hub app config node on the sandbox, with the sandbox's demo app (credentials: insightsHubAppCredentials). */
export function insightsHubAppConfig(id: string, sandbox: Sandbox, overrides: Record<string, unknown> = {}): FlowNode {
  const app = sandbox.demo.insightsHubApp;
  return {
    id,
    type: 'iiot-insights-hub-app',
    gateway: sandbox.url,
    appName: app.appName,
    appVersion: app.appVersion,
    hostTenant: app.hostTenant,
    userTenant: app.userTenant,
    ...overrides,
  };
}

/** The sandbox's demo app credentials, as an Insights Hub app config node's credentials. */
export function insightsHubAppCredentials(sandbox: Sandbox): Record<string, string> {
  const app = sandbox.demo.insightsHubApp;
  return { clientId: app.clientId, clientSecret: app.clientSecret };
}

export interface AgentFlow {
  ids: { agentConfig: string; app: string; agent: string; token: string; request: string; out: string; errors: string };
  nodes: FlowNode[];
  credentials: Record<string, Record<string, string>>;
}

export interface AgentFlowOptions {
  profile?: string;
  /** The onboard agent node's action (default msg: msg.action). */
  action?: string;
  /** Whether the agent config references the app config (for app-side actions); default true. */
  withApp?: boolean;
  privateKey?: string;
}

/** An agent config (with an app config for app-side actions), an onboard agent node, get token and authenticated request, outputs and errors collected. */
export function agentFlow(sandbox: Sandbox, boardingConfig: string, options: AgentFlowOptions = {}): AgentFlow {
  const ids = { agentConfig: uid('agc'), app: uid('app'), agent: uid('ag'), token: uid('tok'), request: uid('req'), out: uid('out'), errors: uid('err') };
  const agent = { insightsHubAgent: ids.agentConfig, wires: [[ids.out]] };
  const nodes: FlowNode[] = [
    { id: ids.agentConfig, type: 'iiot-insights-hub-agent', profile: options.profile ?? 'SHARED_SECRET', app: (options.withApp ?? true) ? ids.app : '' },
    insightsHubAppConfig(ids.app, sandbox),
    { id: ids.agent, type: 'iiot-agent', action: options.action ?? 'msg', ...agent },
    { id: ids.token, type: 'iiot-token', platform: 'insights-hub-agent', ...agent },
    { id: ids.request, type: 'iiot-request', platform: 'insights-hub-agent', method: 'GET', url: '', ret: 'obj', ...agent },
    { id: ids.out, type: 'helper' },
    { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
    { id: ids.errors, type: 'helper' },
  ];
  const credentials: Record<string, Record<string, string>> = {
    [ids.agentConfig]: { boardingConfig, ...(options.privateKey ? { privateKey: options.privateKey } : {}) },
    [ids.app]: insightsHubAppCredentials(sandbox),
  };
  return { ids, nodes, credentials };
}
