import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type http from 'node:http';
import agentNode from '../../src/nodes/iiot-agent.js';
import appRegistrationNode from '../../src/nodes/iiot-app-registration.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import type { Outcome } from '../helpers/outcome.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { type AgentFlow, agentFlow, CONFIG_NODE_MODULES } from '../helpers/platform-flows.js';

export { type AgentFlow, agentFlow };
import { startHttpServer, type TestServer } from '../helpers/servers.js';

/**
 * What the security suite shares: the "evil" server that records every
 * request it gets, the agent flow, and (re-exported from test/helpers/outcome.ts)
 * the check that a message ended in exactly one output or one error. The
 * platform flows come from test/helpers.
 */
export const ALL_MODULES = [...CONFIG_NODE_MODULES, tokenNode, requestNode, agentNode, appRegistrationNode];

export const REDIRECTS = [301, 302, 303, 307, 308] as const;

/** Runtime settings for the suite: back-off long enough that counting token requests means something. */
export const SECURITY_SETTINGS = { backoffInitialMs: 3000, backoffMaxMs: 12000 };

export interface EvilServer extends TestServer {
  /** Every request with its body, as received. */
  received: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  /** Fails the test if anything at all reached the server. */
  assertUntouched(context: string): void;
}

export async function startEvilServer(): Promise<EvilServer> {
  const received: EvilServer['received'] = [];
  const server = await startHttpServer((req, res, body) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body.toString('utf8') });
    // Answers like a token endpoint would: a node that followed would take this token.
    res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'user_session=evil-session' });
    res.end(JSON.stringify({ access_token: 'evil-token', expires_in: 3600, firstName: 'E', lastName: 'Vil', username: 'evil' }));
  });
  return {
    ...server,
    received,
    assertUntouched(context: string) {
      assert.deepEqual(
        received.map((r) => `${r.method} ${r.url} ${r.body.slice(0, 80)}`),
        [],
        `${context}: the evil server received requests`,
      );
    },
  };
}

export { countOutcomes, outcomeOf, type Outcome } from '../helpers/outcome.js';

/** Asserts an outcome is an error with this code, and returns the error. */
export function expectError(outcome: Outcome, code: string, context: string): { code: string; message: string; statusCode?: number } {
  assert.equal(outcome.kind, 'error', `${context}: expected ${code}, got an output with status ${String(outcome.msg.statusCode)}`);
  assert.equal(outcome.error!.code, code, `${context}: ${outcome.error!.message}`);
  return outcome.error!;
}

export function assertNoLeaks(secrets: string[], context: string): void {
  assert.deepEqual(H.leaks(secrets.filter((s) => typeof s === 'string' && s.length >= 6)), [], `${context}: a secret in what the runtime emitted`);
}

/** A new sandbox agent, its flow loaded; returns the flow and the IAT (a secret). */
export async function loadAgent(sandbox: Sandbox): Promise<{ flow: AgentFlow; agentId: string; iat: string }> {
  const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
  const boarding = sandbox.agents.boardingConfiguration(record.id);
  const flow = agentFlow(sandbox, JSON.stringify(boarding));
  await H.load(ALL_MODULES, flow.nodes, flow.credentials);
  return { flow, agentId: record.id, iat: boarding.content.iat };
}

/** The secrets onboarding stored for an agent: its client secrets and registration access tokens. */
export function storedSecrets(stateDir: string, agentId: string): string[] {
  const file = path.join(stateDir, `${agentId}.json`);
  if (!fs.existsSync(file)) return [];
  const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { registrations: Array<{ clientSecret?: string; registrationAccessToken?: string }> };
  return state.registrations.flatMap((r) => [r.clientSecret ?? '', r.registrationAccessToken ?? '']);
}

/** What a security suite's tests reach: set up once per describe block by securitySuite(). */
export interface SecuritySuite {
  readonly sandbox: Sandbox;
  readonly evil: EvilServer;
  /** A temporary folder of the suite's own, deleted after it. */
  readonly root: string;
  /** The runtime's settings; a test may point agentStateDir elsewhere: it is reset after each test. */
  readonly settings: { iiotAuth: typeof SECURITY_SETTINGS & { agentStateDir: string } };
}

/**
 * The set-up every security suite shares: the sandbox, the evil server, a
 * runtime with SECURITY_SETTINGS and agent state in a temporary folder
 * (`root`/agents); after each test the flow is unloaded, faults and counts
 * cleared, and the evil server checked untouched.
 */
export function securitySuite(name: string): SecuritySuite {
  const settings = { iiotAuth: { ...SECURITY_SETTINGS, agentStateDir: '' } };
  let sandbox: Sandbox | undefined;
  let evil: EvilServer | undefined;
  let root = '';
  const agentsDir = () => path.join(root, 'agents');
  before(async () => {
    sandbox = await startSandbox();
    evil = await startEvilServer();
    root = fs.mkdtempSync(path.join(os.tmpdir(), `iiot-security-${name}-`));
    settings.iiotAuth.agentStateDir = agentsDir();
    await H.start(settings);
  });
  after(async () => {
    await H.stop();
    await evil?.stop();
    await sandbox?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });
  afterEach(async () => {
    await H.unload();
    sandbox?.clearFaults();
    sandbox?.resetCalls();
    settings.iiotAuth.agentStateDir = agentsDir();
    evil?.assertUntouched('after the case');
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the security suite is not set up yet: use it in a test or hook');
    return value;
  };
  return {
    get sandbox() {
      return started(sandbox);
    },
    get evil() {
      return started(evil);
    },
    get root() {
      return root;
    },
    settings,
  };
}
