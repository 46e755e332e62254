// Small clients for the sandbox tests, written from docs/protocols.md (not from src/platforms).

import { DEFAULT_LIFETIMES, type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { waitFor } from '../helpers/wait.js';

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** The claims of a JWT, without verifying it (the sandbox verifies; tests only read). */
export function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function jwtHeader(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8')) as Record<string, unknown>;
}

/**
 * A sandbox for one describe block of MBP tests: started before them, stopped
 * after, its lifetimes reset after each; `base` is MBP's URL with its context path.
 */
export function mbpSandbox(): { readonly sandbox: Sandbox; readonly base: string } {
  let sandbox: Sandbox | undefined;
  before(async () => {
    sandbox = await startSandbox();
  });
  after(() => sandbox?.stop());
  afterEach(() => sandbox && Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES));
  return {
    get sandbox() {
      if (!sandbox) throw new Error('the sandbox starts in before()');
      return sandbox;
    },
    get base() {
      return `${this.sandbox.url}/mbp`;
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until a JWT's `exp` has come: the sandbox's token issuers judge by the
 * real clock (only the agents' clock can be skewed), so this waits for it.
 */
export async function waitUntilExpired(token: string): Promise<void> {
  const exp = jwtClaims(token).exp as number;
  await waitFor(() => Date.now() >= exp * 1000, { timeoutMs: exp * 1000 - Date.now() + 5000, what: `the token's exp ${new Date(exp * 1000).toISOString()}` });
}

export function insightsHubTokenRequest(sandbox: Sandbox, scheme = 'Basic'): Promise<Response> {
  const app = sandbox.demo.insightsHubApp;
  return postJson(
    `${sandbox.url}/api/technicaltokenmanager/v3/oauth/token`,
    { grant_type: 'client_credentials', appName: app.appName, appVersion: app.appVersion, hostTenant: app.hostTenant, userTenant: app.userTenant },
    { 'x-space-auth-key': `${scheme} ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString('base64')}` },
  );
}

export async function insightsHubToken(sandbox: Sandbox): Promise<string> {
  const response = await insightsHubTokenRequest(sandbox);
  if (response.status !== 200) throw new Error(`Insights Hub token: ${response.status}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

export async function ciscoEiToken(sandbox: Sandbox): Promise<string> {
  const { username, password } = sandbox.demo.ciscoEi;
  const response = await postJson(`${sandbox.url}/iam/auth/token`, { username, password });
  if (response.status !== 200) throw new Error(`Cisco EI token: ${response.status}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

export function dataTrailsTokenRequest(sandbox: Sandbox, clientId: string, clientSecret: string): Promise<Response> {
  return fetch(`${sandbox.url}/archivist/iam/v1/appidp/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }),
  });
}

export async function dataTrailsToken(sandbox: Sandbox, clientId?: string, clientSecret?: string): Promise<string> {
  const { dataTrails } = sandbox.demo;
  const response = await dataTrailsTokenRequest(sandbox, clientId ?? dataTrails.clientId, clientSecret ?? dataTrails.clientSecret);
  if (response.status !== 200) throw new Error(`DataTrails token: ${response.status}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** Logs in to MBP; returns the headers later requests need. */
export async function mbpLogin(sandbox: Sandbox, contextPath = 'mbp'): Promise<{ cookie: string; 'x-mbp-access-request': string }> {
  const { username, password, firstName, lastName } = sandbox.demo.mbp;
  const response = await postJson(`${sandbox.url}/${contextPath}/api/users/login`, { username, password });
  if (response.status !== 200) throw new Error(`MBP login: ${response.status}`);
  const sessionCookie = response.headers.get('set-cookie')!.split(';')[0];
  return {
    cookie: sessionCookie,
    'x-mbp-access-request': `requesting-entity-firstname=${firstName};;requesting-entity-lastname=${lastName};;requesting-entity-username=${username}`,
  };
}
