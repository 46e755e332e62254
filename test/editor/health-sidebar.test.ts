import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { PLATFORM_DECLARATIONS } from '../../src/platforms/index.js';
import { INSIGHTS_HUB_AGENT } from '../../src/platforms/insights-hub-agent/declaration.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { consentAtSandbox } from '../helpers/sandbox-consent.js';
import { startNodeRed, type NodeRedProcess } from './node-red.js';

/**
 * The "IIoT auth" sidebar tab (resources/health-sidebar.js) and the config
 * dialogs' health line, in Debian's Chromium against a real Node-RED with
 * adminAuth (an admin, and a user with permission "read"), every example flow
 * deployed with the sandbox's demo credentials, and the OAuth 2.0 login
 * example logged in as its comment tells the user (its API call seen in the
 * debug messages the editor receives). The sidebar reads the
 * runtime's real health routes and comms; the sandbox's faults and counts
 * show what the buttons did. Screenshots (English and German, with and
 * without a fault) go to a folder the suite prints; with
 * IIOT_AUTH_DOCS_IMAGES=1 the English one during a fault also replaces
 * docs/images/health-sidebar.png, the README's picture (taken on Node-RED 4.1,
 * whose sidebar shows one tab at full height), so a plain run changes no
 * committed file.
 *
 * Skipped as editor.test.ts is: without /usr/bin/chromium (a failure under
 * CI=true), or with IIOT_AUTH_SKIP_EDITOR_TESTS=1.
 */
interface HealthEntry {
  id: string;
  type: string;
  name: string;
  platformLabel: string;
  state: string;
  tokenExpiresAt?: string;
  lastFailure?: { code: string };
  agent?: { lastRotationAt?: string };
  actions: { renew: boolean; rotate: boolean };
}
declare const RED: {
  workspaces: { active(): string };
  actions: { invoke(name: string): void };
  nodes: { dirty(): boolean };
};
declare const $: (selector: string) => { is(selector: string): boolean };

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
const root = path.resolve(__dirname, '..', '..', '..');
/** The examples' config nodes point at the sandbox's default address (as scripts/demo.ts replaces it). */
const EXAMPLE_SANDBOX_URL = 'http://127.0.0.1:1881';
const PASSWORD = 'health-sidebar-test-password';
const OAUTH2 = 'ex-o2-config';
/** The OAuth 2.0 login example: its config node, the inject to press after the login, and the debug node of the API's answer. */
const LOGIN = { config: 'ex-o2l-config', inject: 'ex-o2l-inject', debug: 'ex-o2l-debug-api' };
/** The first row (platforms sort by label): the fault the README's picture shows. */
const CISCO = 'ex-ei-config';
const AGENT = 'ex-agent-config';
/** The agent example's app: only its manual injects use it, so it has no token after the deploy. */
const NO_TOKEN_AT_START = ['ex-agent-app'];

type FlowNode = Record<string, unknown> & { id: string; type: string };
type Tokens = { access_token: string; expires_in: number; token_type: string };

describe('the health sidebar in a real browser (Chromium)', function () {
  this.timeout(90_000);
  let sandbox: Sandbox | undefined;
  let red: NodeRedProcess | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  let problems: string[] = [];
  /** Set by a test that makes a renew from the page fail. */
  let expectFailedRenew = false;
  const tokens: Record<'admin' | 'reader', Tokens> = {} as never;
  /** Every config node of the examples, as deployed. */
  let configNodes: FlowNode[] = [];
  /** Every secret the flows hold (credentials, the agent's IAT) and, once onboarded, the agent's stored ones. */
  const secrets: string[] = [];
  let agentId = '';
  const shots = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-auth-health-sidebar-'));

  before(async function () {
    if (process.env.IIOT_AUTH_SKIP_EDITOR_TESTS === '1') {
      console.log('      skipped: IIOT_AUTH_SKIP_EDITOR_TESTS=1 is set');
      this.skip();
    }
    if (!fs.existsSync(CHROMIUM)) {
      const install = `the editor tests need ${CHROMIUM}: install it with \`sudo apt-get install -y chromium\` (Debian, Ubuntu)`;
      if (process.env.CI === 'true') throw new Error(`${install}; .ci/run installs it`);
      console.log(`      SKIPPED: ${install}`);
      this.skip();
    }
    console.log(`      screenshots: ${shots}`);
    sandbox = await startSandbox();
    // Node-RED's own password hashing (its dependency), for the two users.
    const bcrypt = createRequire(require.resolve('node-red'))('bcryptjs') as { hashSync(text: string, rounds: number): string };
    const hash = bcrypt.hashSync(PASSWORD, 8);
    red = await startNodeRed({
      adminAuth: {
        type: 'credentials',
        users: [
          { username: 'admin', password: hash, permissions: '*' },
          { username: 'reader', password: hash, permissions: 'read' },
        ],
      },
      // A failed token request is retried soon, so a fault's recovery shows within the test.
      iiotAuth: { backoffInitialMs: 1000, backoffMaxMs: 2000 },
    });
    for (const user of ['admin', 'reader'] as const) tokens[user] = await login(user);
    await deployExamples();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await red?.stop();
    await sandbox?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && context) {
      const file = path.join(shots, `failed-${this.currentTest.title.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`);
      await page.screenshot({ path: file }).catch(() => undefined);
      console.log(`      screenshot of the failure: ${file}\n      Node-RED's output (end):\n${red?.output().slice(-3000)}`);
    }
    sandbox?.clearFaults();
    expectFailedRenew = false;
    await context?.close();
    context = undefined;
  });

  /** Logs in as the editor does, asking for the user's own permissions. */
  async function login(username: 'admin' | 'reader'): Promise<Tokens> {
    const res = await fetch(`${red!.base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: username === 'admin' ? '*' : 'read', username, password: PASSWORD }),
    });
    assert.equal(res.status, 200, `log-in of ${username}`);
    return (await res.json()) as Tokens;
  }

  /** A call of the runtime's admin API as the admin (or `user`). */
  function admin(route: string, init: RequestInit = {}, user: 'admin' | 'reader' = 'admin'): Promise<Response> {
    return fetch(`${red!.base}/${route}`, {
      ...init,
      headers: { authorization: `Bearer ${tokens[user].access_token}`, ...(init.headers as Record<string, string>) },
    });
  }
  async function health(): Promise<HealthEntry[]> {
    const res = await admin('iiot-auth/health');
    assert.equal(res.status, 200);
    return ((await res.json()) as { credentials: HealthEntry[] }).credentials;
  }
  /** POST renew or rotate from outside the browser (the page hears of it over comms only). */
  function act(id: string, action: 'renew' | 'rotate'): Promise<Response> {
    return admin(`iiot-auth/health/${id}/${action}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  }

  /** Every example flow, pointed at the sandbox, each config node with the sandbox's demo credentials (as scripts/demo.ts does). */
  async function deployExamples() {
    const agent = sandbox!.agents.create({ name: 'Health sidebar agent', securityProfile: 'SHARED_SECRET' });
    agentId = agent.id;
    const boarding = sandbox!.agents.boardingConfiguration(agent.id);
    const dir = path.join(root, 'examples');
    const flows = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .flatMap((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8').split(EXAMPLE_SANDBOX_URL).join(sandbox!.url)) as FlowNode[]);
    for (const node of flows) {
      const credentials = credentialsFor(node, JSON.stringify(boarding));
      if (!credentials) continue;
      node.credentials = credentials;
      configNodes.push(node);
      secrets.push(...Object.values(credentials).filter((v) => v.length >= 6));
    }
    secrets.push(boarding.content.iat);
    const res = await admin('flows', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    assert.equal(res.status, 204, await res.text());
    await logInTheLoginExample();
    // The examples' injects fire once: every credential takes its first token (the agent onboards).
    let states = '';
    await waitUntil(
      () => `every example credential has its first token (now: ${states})`,
      async () => {
        const entries = await health();
        states = entries.map((e) => `${e.id} ${e.state}${e.tokenExpiresAt ? ' with token' : ''}${e.lastFailure ? ` ${e.lastFailure.code}` : ''}`).join(', ');
        return entries.length === configNodes.length && entries.every((e) => e.state === 'ok' && (e.tokenExpiresAt || NO_TOKEN_AT_START.includes(e.id)));
      },
    );
    secrets.push(...agentSecrets(), ...loginSecrets());
    configNodes = configNodes.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * What the login example's comment asks of the user: "Log in" in the config
   * dialog (its admin route), "Allow" on the sandbox's consent page, the
   * browser back at the callback, then the inject's button. The API's answer
   * must reach the debug sidebar (Node-RED's comms, as the editor gets it).
   */
  async function logInTheLoginExample() {
    await waitUntil('the login example is deployed', async () => (await admin(`iiot-auth/oauth2/${LOGIN.config}/login`)).status === 200);
    const started = await admin(`iiot-auth/oauth2/${LOGIN.config}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ callbackUrl: `${red!.base}/iiot-auth/oauth2/callback` }),
    });
    const body = (await started.json()) as { authorizationUrl: string };
    assert.equal(started.status, 200, JSON.stringify(body));
    const callback = await fetch(await consentAtSandbox(body.authorizationUrl));
    const said = await callback.text();
    assert.equal(callback.status, 200, said);
    assert.match(said, /Logged in as Demo Operator/);
    const debug = await debugMessages();
    try {
      assert.equal((await admin(`inject/${LOGIN.inject}`, { method: 'POST' })).status, 200);
      const answer = await debug.next(LOGIN.debug);
      assert.match(answer, /"statusCode":200/, answer);
      assert.match(answer, /"user":"demo-operator"/, answer);
    } finally {
      debug.close();
    }
  }

  /** The debug messages the editor's sidebar receives over Node-RED's comms (its websocket, with the admin's token). */
  async function debugMessages(): Promise<{ next(nodeId: string): Promise<string>; close(): void }> {
    type Socket = { on(event: string, listener: (data: unknown) => void): void; send(text: string): void; close(): void };
    const WebSocket = createRequire(require.resolve('node-red'))('ws') as new (url: string) => Socket;
    const socket = new WebSocket(`${red!.base.replace(/^http/, 'ws')}/comms`);
    const received: Array<{ id: string; msg: string }> = [];
    let authorized = false;
    socket.on('message', (data) => {
      const parsed = JSON.parse(String(data)) as unknown;
      for (const item of (Array.isArray(parsed) ? parsed : [parsed]) as Array<{ auth?: string; topic?: string; data?: { id: string; msg: string } }>) {
        if (item.auth === 'ok') authorized = true;
        if (item.topic === 'debug' && item.data) received.push(item.data);
      }
    });
    await new Promise<void>((resolve, reject) => {
      socket.on('open', () => resolve());
      socket.on('error', (err) => reject(err as Error));
    });
    socket.send(JSON.stringify({ auth: tokens.admin.access_token }));
    await waitUntil('comms accepts the admin token', async () => authorized);
    socket.send(JSON.stringify({ subscribe: 'debug' }));
    return {
      async next(nodeId) {
        await waitUntil(`a debug message of ${nodeId} (received: ${received.map((r) => r.id).join(', ')})`, async () => received.some((r) => r.id === nodeId));
        return received.find((r) => r.id === nodeId)!.msg;
      },
      close: () => socket.close(),
    };
  }

  /** The login example's stored refresh token (unsealed: no encryption key is set here). */
  function loginSecrets(): string[] {
    const file = path.join(red!.userDir, 'iiot-auth', 'oauth2', `oauth2-${LOGIN.config}.json`);
    if (!fs.existsSync(file)) return [];
    const token = (JSON.parse(fs.readFileSync(file, 'utf8')) as { refreshToken?: string }).refreshToken;
    return token ? [token] : [];
  }

  function credentialsFor(node: FlowNode, boarding: string): Record<string, string> | undefined {
    if (node.type === INSIGHTS_HUB_AGENT.configType) return { boardingConfig: boarding };
    const declaration = PLATFORM_DECLARATIONS.find((p) => p.configType === node.type);
    const demo = declaration ? (sandbox!.demo as unknown as Record<string, Record<string, string> | undefined>)[declaration.property] : undefined;
    if (!declaration || !demo) return undefined;
    return Object.fromEntries(Object.keys(declaration.credentials).map((field) => [field, demo[field] ?? '']));
  }

  /** The agent's client secrets and registration access tokens, from its state file. */
  function agentSecrets(): string[] {
    const file = path.join(red!.userDir, 'iiot-auth', 'agents', `${agentId}.json`);
    if (!fs.existsSync(file)) return [];
    const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { registrations?: Array<{ clientSecret?: string; registrationAccessToken?: string }> };
    return (state.registrations ?? []).flatMap((r) => [r.clientSecret ?? '', r.registrationAccessToken ?? '']).filter((s) => s.length >= 6);
  }

  async function waitUntil(description: string | (() => string), condition: () => Promise<boolean>) {
    const deadline = Date.now() + 30_000;
    while (!(await condition())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting until ${typeof description === 'string' ? description : description()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A fresh editor page, logged in as `user`, in the browser's language `locale`, the health tab shown. */
  async function openEditor(user: 'admin' | 'reader' = 'admin', locale = 'en-US') {
    await context?.close();
    problems = [];
    context = await browser!.newContext({ viewport: { width: 1400, height: 900 }, locale });
    // As the editor keeps its log-in (RED.settings "auth-tokens", at the root path).
    await context.addInitScript((t) => localStorage.setItem('auth-tokens', JSON.stringify(t)), tokens[user]);
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const origin = new URL(red!.base).origin;
    page.on('pageerror', (err) => problems.push(`page error: ${err.stack ?? err.message}`));
    page.on('console', (message) => {
      const where = message.location().url;
      // A renew the test makes fail: the browser logs the route's error answer.
      if (/^Failed to load resource/.test(message.text()) && /\/iiot-auth\/health\/[^/]+\/renew$/.test(where) && expectFailedRenew) return;
      const external = /^Failed to load resource/.test(message.text()) && where !== '' && new URL(where).origin !== origin;
      if (/iiot/i.test(`${message.text()} ${where}`) || (message.type() === 'error' && !external)) {
        problems.push(`console ${message.type()}: ${message.text()}${where ? ` (${where})` : ''}`);
      }
    });
    await page.goto(red!.base);
    await page.waitForFunction(
      () =>
        RED?.workspaces?.active() &&
        !$('#red-ui-loading-progress').is(':visible') &&
        document.querySelector('.red-ui-palette-node[data-palette-type="iiot-token"]') !== null,
      undefined,
      { timeout: 30_000 },
    );
    await page.evaluate(() => RED.actions.invoke('iiot-auth:show-health-tab'));
    await page.locator('.iiot-auth-health-entry').first().waitFor({ state: 'visible' });
  }

  const entry = (id: string) => page.locator(`.iiot-auth-health-entry[data-id="${id}"]`);
  const stateOf = (id: string) => entry(id).getAttribute('data-state');
  const button = (id: string, action: string) => entry(id).locator(`button[data-action="${action}"]`);

  /** The sidebar's text and HTML, any open dialog's and every notification's hold none of the flows' secrets. */
  async function assertNoLeaks(context: string) {
    const shown = await page.evaluate(() =>
      ['#red-ui-sidebar', '#red-ui-editor-stack', '#red-ui-notifications']
        .map((s) => document.querySelector(s))
        .map((el) => (el ? `${(el as HTMLElement).innerText}\n${el.innerHTML}` : ''))
        .join('\n'),
    );
    const all = [...secrets, ...agentSecrets(), ...loginSecrets()];
    assert.ok(all.length >= configNodes.length, 'the secrets to look for are known');
    assert.deepEqual(
      all.filter((s) => shown.includes(s)),
      [],
      `${context}: a secret in the sidebar, dialog or notifications`,
    );
  }
  function assertNoProblems() {
    assert.deepEqual(problems, [], 'page errors or console errors in the editor');
  }
  /** The sidebar's picture, the pointer off it (no hover shade), with entry `id` scrolled into view when given. */
  async function screenshot(name: string, id?: string) {
    await page.mouse.move(600, 600);
    if (id) await entry(id).evaluate((el) => el.scrollIntoView({ block: 'nearest' }));
    const file = path.join(shots, name);
    await page.locator('#red-ui-sidebar').screenshot({ path: file });
    return file;
  }
  /** Waits until the tray has finished opening (see editor.test.ts: RED.tray raises the stack's z-index to 13 last). */
  async function trayOpened() {
    await waitUntil('the tray has finished opening', () => page.evaluate(() => document.getElementById('red-ui-editor-stack')?.style.zIndex === '13'));
  }

  it('lists every config node of the example flows with its state, platform, times and counts; a row opens its config node', async () => {
    await openEditor();
    const runtime = await health();
    await waitUntil('a row per config node', async () => (await page.locator('.iiot-auth-health-entry').count()) === configNodes.length);
    const rows = await page.locator('.iiot-auth-health-entry').evaluateAll((els) =>
      els.map((el) => ({
        id: el.getAttribute('data-id'),
        state: el.getAttribute('data-state'),
        name: el.querySelector('.iiot-auth-health-name')?.textContent,
        platform: el.querySelector('.iiot-auth-health-platform')?.textContent,
        dot: el.querySelector('.iiot-auth-health-dot')?.className,
      })),
    );
    // The runtime's order (platform, then name), every example config node once, each "ok" with a green dot.
    assert.deepEqual(
      rows.map((r) => r.id),
      runtime.map((e) => e.id),
    );
    assert.deepEqual(
      [...rows.map((r) => r.id)].sort(),
      configNodes.map((n) => n.id),
    );
    for (const r of rows) {
      const node = configNodes.find((n) => n.id === r.id)!;
      const e = runtime.find((x) => x.id === r.id)!;
      assert.equal(r.state, 'ok', `${r.id}`);
      assert.equal(r.name, node.name, `${r.id}: its name`);
      assert.equal(r.platform, e.platformLabel);
      assert.match(r.dot ?? '', /iiot-auth-health-dot-green/);
    }
    // Times relative, the absolute one in the tooltip.
    const expiry = entry(OAUTH2).locator('tr', { hasText: 'Token expires' }).locator('.iiot-auth-health-time');
    assert.match(await expiry.innerText(), /^in \d+ minutes$/);
    assert.equal(
      await expiry.getAttribute('title'),
      await page.evaluate((iso) => new Date(iso).toLocaleString('en-US'), runtime.find((e) => e.id === OAUTH2)!.tokenExpiresAt!),
    );
    assert.match(await entry(OAUTH2).locator('.iiot-auth-health-counts').innerText(), /^Tokens [1-9]\d* \(\d+ renewals, 0 failed\)/);
    // The agent's own rows.
    const agentText = await entry(AGENT).innerText();
    for (const label of ['Secret expires', 'Next rotation', 'Store']) assert.ok(agentText.includes(label), `the agent shows "${label}":\n${agentText}`);
    assert.equal(await button(AGENT, 'rotate').count(), 1);
    assert.equal(await button(OAUTH2, 'rotate').count(), 0, 'no rotation for an OAuth 2.0 client');
    assert.equal((await page.locator('.iiot-auth-health-summary').innerText()).trim(), `${configNodes.length} OK`);
    await screenshot('health-sidebar-en.png');
    await assertNoLeaks('the list');

    // A row opens its config node's dialog, which shows the same state.
    await entry(OAUTH2).locator('.iiot-auth-health-name').click();
    await trayOpened();
    assert.equal(await page.locator('#node-config-input-name').inputValue(), configNodes.find((n) => n.id === OAUTH2)!.name);
    const line = page.locator('#node-config-dialog-edit-form .iiot-auth-health-line');
    await waitUntil('the dialog shows the state', async () => /^OK · token expires in \d+ minutes$/.test(await line.innerText()));
    await assertNoLeaks('the config dialog');
    await page.locator('#node-config-dialog-cancel').click();
    await page.locator('#node-config-dialog-ok').waitFor({ state: 'detached' });
    assertNoProblems();
  });

  it('changes live (over comms) when the token endpoint fails, and again when it recovers', async () => {
    await openEditor();
    assert.equal(await stateOf(CISCO), 'ok');
    let fetches = 0;
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/iiot-auth/health') fetches++;
    });
    sandbox!.fault('ciscoEi.token', { kind: 'status', status: 500 });
    // Another user (the test, outside the page) presses renew: the page hears of it over comms only.
    const failed = await act(CISCO, 'renew');
    assert.ok(failed.status >= 400, `renew during the fault: ${failed.status}`);
    const answer = (await failed.json()) as { code: string; message: string };
    await waitUntil('the row shows the failure', async () => ['backing-off', 'failing'].includes((await stateOf(CISCO)) ?? ''));
    const dot = await entry(CISCO).locator('.iiot-auth-health-dot').getAttribute('class');
    assert.match(dot ?? '', (await stateOf(CISCO)) === 'backing-off' ? /dot-yellow/ : /dot-red/);
    await waitUntil('the last failure is shown', async () => (await entry(CISCO).locator('tr', { hasText: 'Last failure' }).count()) === 1);
    assert.ok((await entry(CISCO).innerText()).includes(answer.code), `the row names ${answer.code}`);
    assert.equal(
      (await page.locator('.iiot-auth-health-summary-item').first().innerText()).trim(),
      `1 ${(await stateOf(CISCO)) === 'backing-off' ? 'backing off' : 'failing'}`,
      'the summary puts the trouble first',
    );
    const fault = await screenshot('health-sidebar-fault-en.png', CISCO);
    if (process.env.IIOT_AUTH_DOCS_IMAGES === '1') fs.copyFileSync(fault, path.join(root, 'docs', 'images', 'health-sidebar.png'));
    await assertNoLeaks('during the fault');

    sandbox!.clearFaults();
    const recovered = await act(CISCO, 'renew');
    assert.equal(recovered.status, 200);
    await waitUntil('the row is ok again', async () => (await stateOf(CISCO)) === 'ok');
    assert.equal(fetches, 0, 'the changes came over comms, without reading the list again');
    await assertNoLeaks('after the recovery');
    assertNoProblems();
  });

  it('"Renew token now" makes exactly one token request, however often it is pressed; its button is disabled while it runs', async () => {
    await openEditor();
    const before = sandbox!.calls('oauth2.token');
    // The token endpoint answers slowly once, so the running request can be seen.
    sandbox!.fault('oauth2.token', { kind: 'delay', ms: 1500, times: 1 });
    const renew = button(OAUTH2, 'renew');
    await renew.click();
    await waitUntil('the button is disabled', () => renew.isDisabled());
    // While it runs: a second press does nothing (the button is disabled), and another user's press joins it.
    await renew.evaluate((el) => (el as HTMLButtonElement).click());
    const joined = await act(OAUTH2, 'renew');
    assert.equal(joined.status, 200);
    await page.locator('.red-ui-notification', { hasText: 'new token obtained' }).waitFor({ state: 'visible' });
    await waitUntil('the button is enabled again', async () => !(await renew.isDisabled()));
    assert.equal(sandbox!.calls('oauth2.token') - before, 1, 'one token request');
    assert.equal(await stateOf(OAUTH2), 'ok');
    await assertNoLeaks('after renew');
    assertNoProblems();
  });

  it('"Rotate now" rotates the agent once and it ends with a token of the new credentials', async () => {
    await openEditor();
    const rotations = sandbox!.calls('agents.rotate');
    const registrations = sandbox!.agents.status(agentId).registrations;
    const lastRotation = (await health()).find((e) => e.id === AGENT)!.agent?.lastRotationAt;
    const rotate = button(AGENT, 'rotate');
    await rotate.click();
    await page.locator('.red-ui-notification', { hasText: 'credentials rotated' }).waitFor({ state: 'visible' });
    await waitUntil('the button is enabled again', async () => !(await rotate.isDisabled()));
    assert.equal(sandbox!.calls('agents.rotate') - rotations, 1, 'one rotation request');
    assert.equal(sandbox!.agents.status(agentId).registrations - registrations, 1, 'one new registration');
    const after = (await health()).find((e) => e.id === AGENT)!;
    assert.equal(after.state, 'ok');
    assert.notEqual(after.agent?.lastRotationAt, lastRotation);
    await waitUntil('the row shows the last rotation', async () => (await entry(AGENT).locator('tr', { hasText: 'Last rotation' }).count()) === 1);
    await assertNoLeaks('after rotate');
    assertNoProblems();
  });

  it('a read-only user sees every row but no action button, and the runtime refuses the actions', async () => {
    await openEditor('reader');
    await waitUntil('a row per config node', async () => (await page.locator('.iiot-auth-health-entry').count()) === configNodes.length);
    assert.equal(await page.locator('.iiot-auth-health-entry button').count(), 0);
    const refused = await admin(`iiot-auth/health/${OAUTH2}/renew`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }, 'reader');
    // Node-RED's permission check answers 401 for a scope the token lacks.
    assert.equal(refused.status, 401);
    await assertNoLeaks('read-only');
    assertNoProblems();
  });

  it('in German: German labels, states and relative times; a fault shows in German too', async () => {
    await openEditor('admin', 'de-DE');
    // The tab's name as its View menu entry has it (Node-RED 4.1 and 5 alike; 5 shows the tab as an icon).
    assert.equal((await page.locator('#menu-item-view-menu-iiot-auth-health .red-ui-menu-label').textContent())?.trim(), 'IIoT-Auth: Zugangsdaten');
    const text = await entry(OAUTH2).innerText();
    for (const words of ['Token läuft ab', 'Erneuerung', 'Token jetzt erneuern']) assert.ok(text.includes(words), `"${words}" in:\n${text}`);
    assert.match(await entry(OAUTH2).locator('tr', { hasText: 'Token läuft ab' }).locator('.iiot-auth-health-time').innerText(), /^in \d+ Minuten$/);
    assert.ok((await entry(AGENT).innerText()).includes('Jetzt rotieren'));
    await screenshot('health-sidebar-de.png');

    sandbox!.fault('oauth2.token', { kind: 'status', status: 500 });
    expectFailedRenew = true;
    await button(OAUTH2, 'renew').click();
    await page.locator('.red-ui-notification', { hasText: 'Erneuern des Tokens fehlgeschlagen' }).waitFor({ state: 'visible' });
    await waitUntil('the row shows the failure', async () => ['backing-off', 'failing'].includes((await stateOf(OAUTH2)) ?? ''));
    assert.match(await entry(OAUTH2).locator('.iiot-auth-health-state-word').innerText(), /^(wartet auf Wiederholung|gestört)$/);
    assert.ok((await entry(OAUTH2).innerText()).includes('Letzter Fehler'));
    await screenshot('health-sidebar-fault-de.png', OAUTH2);
    // The config node's dialog says the same in its health line.
    await entry(OAUTH2).locator('.iiot-auth-health-name').click();
    await trayOpened();
    const line = page.locator('#node-config-dialog-edit-form .iiot-auth-health-line');
    await waitUntil('the dialog shows the failure', async () => /Letzter Fehler: TOKEN_ENDPOINT_ERROR/.test(await line.innerText()));
    assert.match(await line.innerText(), /^(wartet auf Wiederholung|gestört) · /);
    await assertNoLeaks('in German, the dialog during the fault');
    await page.locator('#node-config-dialog-cancel').click();
    await page.locator('#node-config-dialog-ok').waitFor({ state: 'detached' });
    await assertNoLeaks('in German');
    sandbox!.clearFaults();
    assert.equal((await act(OAUTH2, 'renew')).status, 200);
    await waitUntil('ok again', async () => (await stateOf(OAUTH2)) === 'ok');
    assertNoProblems();
  });

  it('the OAuth 2.0 login example: "Log in" in its dialog through the sandbox\'s consent page ("Allow"); the dialog shows the demo user, the API answers for them', async () => {
    await openEditor();
    const exchanges = sandbox!.calls('oauth2.token');
    await entry(LOGIN.config).locator('.iiot-auth-health-name').click();
    await trayOpened();
    const status = page.locator('.iiot-o2-login-status');
    await waitUntil('the dialog shows the login of the start', async () => /Logged in as Demo Operator/.test(await status.innerText()));
    const popupOpened = page.waitForEvent('popup');
    await page.locator('.iiot-o2-login-button').click();
    const popup = await popupOpened;
    await popup.locator('button[value="allow"]').waitFor({ state: 'visible' });
    assert.match(await popup.locator('body').innerText(), /sandbox-oauth2-client asks to act for you with the scope openid read/);
    const closed = popup.waitForEvent('close');
    await popup.locator('button[value="allow"]').click();
    await closed;
    await waitUntil('the code was exchanged', async () => sandbox!.calls('oauth2.token') > exchanges);
    // A new login has no "last used" yet: the one of the start (used by the inject) had.
    await waitUntil('the dialog shows the new login', async () => /Logged in as Demo Operator \(openid read\)$/.test(await status.innerText()));
    await assertNoLeaks('the login dialog');
    await page.locator('#node-config-dialog-cancel').click();
    await page.locator('#node-config-dialog-ok').waitFor({ state: 'detached' });

    const debug = await debugMessages();
    try {
      assert.equal((await admin(`inject/${LOGIN.inject}`, { method: 'POST' })).status, 200);
      assert.match(await debug.next(LOGIN.debug), /"statusCode":200.*"user":"demo-operator"|"user":"demo-operator".*"statusCode":200/);
    } finally {
      debug.close();
    }
    assertNoProblems();
  });

  it('the runtime log holds none of the secrets', () => {
    const output = red!.output();
    assert.deepEqual(
      [...secrets, ...agentSecrets(), ...loginSecrets()].filter((s) => output.includes(s)),
      [],
    );
  });
});
