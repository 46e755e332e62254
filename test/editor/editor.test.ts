import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type Locator } from 'playwright-core';
import { PLATFORM_DECLARATIONS } from '../../src/platforms/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { startNodeRed, type NodeRedProcess } from './node-red.js';

/**
 * The nodes' editor files (nodes/*.html) in the real Node-RED editor, in a
 * real browser: Debian's Chromium, driven by playwright-core (which never
 * downloads a browser). A Node-RED process without adminAuth loads the
 * package; every test gets a fresh editor page (a new browser context), so
 * no test depends on another's dialogs. The last one deploys.
 *
 * Without /usr/bin/chromium the suite is skipped with a one-line notice
 * that says how to install it, except in CI (CI=true), where it fails.
 * IIOT_AUTH_SKIP_EDITOR_TESTS=1 skips it (and says so).
 */
// What page.evaluate uses of the editor's globals.
interface EditorNode {
  id: string;
  valid?: boolean;
  [property: string]: unknown;
}
declare const RED: {
  workspaces: { active(): string };
  view: { importNodes(nodes: object[], options: object): void; selection(): { nodes?: EditorNode[] } };
  nodes: {
    node(id: string): EditorNode | null;
    getType(type: string): { category?: string } | null;
    filterNodes(filter: { type: string }): EditorNode[];
    eachNode(callback: (node: EditorNode) => void): void;
    eachConfig(callback: (node: EditorNode) => void): void;
    dirty(value?: boolean): boolean;
  };
};
declare const $: (selector: string) => { is(selector: string): boolean };

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-quic',
  '--disable-sync',
];
const root = path.resolve(__dirname, '..', '..', '..');
const artifacts = path.join(root, 'dist', 'test-artifacts');

/** What the palette shows in our category, in order. */
const ACTION_NODES = [
  { type: 'iiot-token', label: 'get token' },
  { type: 'iiot-request', label: 'authenticated request' },
  { type: 'iiot-agent', label: 'onboard agent' },
  { type: 'iiot-app-registration', label: 'app registration' },
  { type: 'iiot-auth-events', label: 'auth events' },
];
const CONFIG_NODES = PLATFORM_DECLARATIONS.map((p) => p.configType);
/** Every platform's row in the action nodes' dialogs, from the declarations. */
const PLATFORM_ROWS = PLATFORM_DECLARATIONS.map((p) => p.id);

/** An Insights Hub app config node, complete (what a user would have entered). */
const IH_APP = {
  id: 'ihapp1',
  type: 'iiot-insights-hub-app',
  name: '',
  gateway: 'https://gateway.eu1.mindsphere.io',
  appName: 'iiotdemo',
  appVersion: '1.0.0',
  hostTenant: 'sandboxhost',
  userTenant: 'sandboxuser',
  useEnv: false,
  tls: '',
  proxy: '',
  // As an export with credentials has them; without, the config node is invalid.
  credentials: { clientId: 'editor-client-id', clientSecret: 'editor-client-secret' },
};
/** Flow nodes as the editor creates them from the palette (all defaults set), without any config node. */
function requestNode(id: string, x: number, y: number, wires: string[] = []) {
  return {
    id,
    type: 'iiot-request',
    name: '',
    platform: 'insights-hub-app',
    method: 'GET',
    url: '',
    ret: 'txt',
    timeout: '',
    insightsHubApp: '',
    insightsHubAgent: '',
    ciscoEi: '',
    dataTrails: '',
    mbp: '',
    x,
    y,
    wires: [wires],
  };
}
function tokenNode(id: string, platform: string, x: number, y: number, wires: string[] = []) {
  return { id, type: 'iiot-token', name: '', platform, insightsHubApp: '', insightsHubAgent: '', ciscoEi: '', dataTrails: '', mbp: '', x, y, wires: [wires] };
}

describe('the editor in a real browser (Chromium)', function () {
  this.timeout(60_000);
  let sandbox: Sandbox | undefined;
  let red: NodeRedProcess | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  /** Page errors and console errors of the current page that count as failures. */
  let problems: string[] = [];

  before(async function () {
    if (process.env.IIOT_AUTH_SKIP_EDITOR_TESTS === '1') {
      console.log(`      skipped: IIOT_AUTH_SKIP_EDITOR_TESTS=1 is set (${fs.existsSync(CHROMIUM) ? `${CHROMIUM} is there` : `${CHROMIUM} is missing`})`);
      this.skip();
    }
    if (!fs.existsSync(CHROMIUM)) {
      const install = `the editor tests need ${CHROMIUM}: install it with \`sudo apt-get install -y chromium\` (Debian, Ubuntu)`;
      // In CI a missing browser is a failure; on a developer's machine, a notice.
      if (process.env.CI === 'true') throw new Error(`${install}; .ci/run installs it`);
      console.log(`      SKIPPED: ${install}`);
      this.skip();
    }
    sandbox = await startSandbox();
    red = await startNodeRed();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await red?.stop();
    await sandbox?.stop();
  });

  /** A fresh editor page on the runtime's current flows, with our nodes in the palette. */
  beforeEach(() => openEditor());

  /** Opens the editor in a new browser context (its own storage), in the browser's language `locale`. */
  async function openEditor(locale = 'en-US') {
    await context?.close();
    problems = [];
    context = await browser!.newContext({ viewport: { width: 1400, height: 860 }, locale });
    page = await context.newPage();
    // Bounds a failure only (a passing wait ends at the event): generous for a loaded machine.
    page.setDefaultTimeout(20_000);
    const origin = new URL(red!.base).origin;
    page.on('pageerror', (err) => problems.push(`page error: ${err.stack ?? err.message}`));
    page.on('console', (message) => {
      const text = message.text();
      const where = message.location().url;
      // Without a network the editor cannot reach the palette catalogue
      // (catalogue.nodered.org): a failed load of something outside the
      // runtime is no fault of ours. Everything else that is an error is, and
      // so is anything the editor logs about our nodes (it logs a throwing
      // validator or definition function with console.log).
      const external = /^Failed to load resource/.test(text) && where !== '' && new URL(where).origin !== origin;
      if (/iiot/i.test(`${text} ${where}`) || (message.type() === 'error' && !external)) {
        problems.push(`console ${message.type()}: ${text}${where ? ` (${where}:${message.location().lineNumber})` : ''}`);
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
  }

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && context) {
      fs.mkdirSync(artifacts, { recursive: true });
      const file = path.join(artifacts, `editor-failed-${this.currentTest.title.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`);
      await page.screenshot({ path: file }).catch(() => undefined);
      console.log(`      screenshot of the failure: ${path.relative(root, file)}\n      Node-RED's output (end):\n${red?.output().slice(-3000)}`);
    }
    await context?.close();
    context = undefined;
  });

  function assertNoProblems() {
    assert.deepEqual(problems, [], 'page errors or console errors in the editor');
  }

  /** Adds nodes to the open flow as an import does (flow nodes get the active workspace). */
  async function importNodes(nodes: object[]) {
    await page.evaluate((list) => {
      const z = RED.workspaces.active();
      RED.view.importNodes(
        list.map((n) => ('x' in n ? { ...n, z } : n)),
        { touchImport: true, notify: false },
      );
    }, nodes);
  }

  function nodeValue<T>(id: string, property: string): Promise<T> {
    return page.evaluate(([i, p]) => RED.nodes.node(i)?.[p], [id, property]) as Promise<T>;
  }

  /**
   * Polls a condition until it holds. The deadline only bounds a failure: a
   * passing test goes on as soon as the condition holds, so it is generous
   * (a loaded machine once took longer than 5 s for a status to arrive).
   */
  async function waitUntil(description: string, condition: () => Promise<boolean>) {
    const deadline = Date.now() + 30_000;
    while (!(await condition())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting until ${description}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const hasClass = (locator: Locator, name: string) => locator.evaluate((el, c) => el.classList.contains(c), name);

  /** Double-clicks the node on the workspace and waits for its edit dialog. */
  async function openNode(id: string) {
    await page.locator(`g.red-ui-flow-node-group[id="${id}"] rect.red-ui-flow-node`).dblclick();
    await page.locator('#node-dialog-ok').waitFor({ state: 'visible' });
  }
  /**
   * Waits until the open tray has finished opening: Node-RED resizes its panes
   * in timers after the tray appears, and a tray closed before that makes its
   * own code fail on the closed description editor ("Cannot read properties of
   * null (reading 'resize')", seen on a loaded machine). The last of those
   * timers raises the editor stack's z-index to 13 (RED.tray, raiseTrayZ); each
   * tray's opening lowers it first.
   */
  async function trayOpened() {
    await waitUntil('the tray has finished opening', () => page.evaluate(() => document.getElementById('red-ui-editor-stack')?.style.zIndex === '13'));
  }
  async function closeNode(button: 'ok' | 'cancel') {
    await trayOpened();
    await page.locator(`#node-dialog-${button}`).click();
    await page.locator('#node-dialog-ok').waitFor({ state: 'detached' });
  }
  async function closeConfig(button: 'ok' | 'cancel') {
    await trayOpened();
    await page.locator(`#node-config-dialog-${button}`).click();
    await page.locator('#node-config-dialog-ok').waitFor({ state: 'detached' });
  }
  /** Which platform rows of the open dialog are shown. */
  async function shownPlatformRows(): Promise<string[]> {
    const shown: string[] = [];
    for (const platform of PLATFORM_ROWS) {
      if (await page.locator(`.iiot-auth-platform-row[data-platform="${platform}"]`).isVisible()) shown.push(platform);
    }
    return shown;
  }
  /** Types into a field as a user does and leaves it (the editor validates on change). */
  async function typeInto(selector: string, text: string) {
    const field = page.locator(selector);
    await field.fill(text);
    await field.press('Tab');
  }

  it('loads without page errors or console errors; the palette has our action nodes in "iiot auth"', async () => {
    const header = page.locator('#red-ui-palette-header-iiot_auth');
    assert.equal((await header.innerText()).trim(), 'iiot auth');
    const entries = page.locator('#red-ui-palette-base-category-iiot_auth .red-ui-palette-node');
    const shown = await entries.evaluateAll((els) =>
      els.map((el) => ({
        type: el.getAttribute('data-palette-type'),
        label: el.getAttribute('data-palette-label'),
        visible: (el as HTMLElement).offsetParent !== null,
      })),
    );
    assert.deepEqual(
      shown,
      ACTION_NODES.map((n) => ({ ...n, visible: true })),
    );
    // The config nodes are registered (they are not in the palette).
    const registered = await page.evaluate((types) => types.filter((t) => RED.nodes.getType(t)?.category === 'config'), CONFIG_NODES);
    assert.deepEqual(registered, CONFIG_NODES);
    // The icon loads.
    const icon = await page.evaluate(async () => {
      const res = await fetch('icons/node-red-contrib-iiot-auth/iiot-auth.svg');
      return { status: res.status, type: res.headers.get('content-type') };
    });
    assert.equal(icon.status, 200);
    assert.match(icon.type ?? '', /svg/);
    assertNoProblems();
  });

  it('the action nodes dragged from the palette open their dialogs; so do the config dialogs no other test opens', async () => {
    const canvas = page.locator('#red-ui-workspace-chart');
    for (const [i, { type }] of ACTION_NODES.entries()) {
      await page
        .locator(`.red-ui-palette-node[data-palette-type="${type}"]`)
        .dragTo(canvas, { targetPosition: { x: 150 + 220 * (i % 4), y: 100 + 120 * Math.floor(i / 4) } });
    }
    const added = await page.evaluate(
      (types) => types.map((t) => RED.nodes.filterNodes({ type: t }).map((n) => n.id)),
      ACTION_NODES.map((n) => n.type),
    );
    assert.deepEqual(
      added.map((ids) => ids.length),
      [1, 1, 1, 1, 1],
      'one node of each type is on the workspace',
    );
    const [token, request, agent, registration, events] = added.map((ids) => ids[0]!);
    // Fresh from the palette (defaults only), every one lacks its config node.
    for (const id of [token, request, agent, registration]) assert.equal(await nodeValue(id, 'valid'), false, `${id} is invalid`);
    assert.equal(await nodeValue(request, 'platform'), 'insights-hub-app');
    assert.equal(await nodeValue(request, 'method'), 'GET');

    // The config dialogs that no test below opens: from the get token dialog's "+" buttons.
    await openNode(token);
    const others = { 'insights-hub-agent': ['insightsHubAgent', 'Insights Hub agent'], datatrails: ['dataTrails', 'DataTrails'], mbp: ['mbp', 'MBP'] } as const;
    for (const [platform, [property, title]] of Object.entries(others)) {
      await page.locator('#node-input-platform').selectOption(platform);
      assert.deepEqual(await shownPlatformRows(), [platform]);
      await page.locator(`#node-input-btn-${property}-add`).click();
      await page.locator('#node-config-dialog-ok').waitFor({ state: 'visible' });
      assert.equal((await page.locator('.red-ui-tray-breadcrumbs li').last().innerText()).trim(), `Add new ${title} config node`);
      await closeConfig('cancel');
    }
    await closeNode('cancel');
    for (const id of [request, agent, registration]) {
      await openNode(id);
      await closeNode('cancel');
    }
    // auth events watches every credential by default (none ticked): valid as it comes; the list says there is none yet.
    assert.equal(await nodeValue(events!, 'valid'), true);
    await openNode(events!);
    assert.match(await page.locator('#node-input-configs-list').innerText(), /No config node of this package yet/);
    assert.match(await page.locator('.iiot-auth-events-configs').innerText(), /None ticked: all config nodes/);
    await typeInto('#node-input-warnDays', '0');
    await waitUntil('a warning window of 0 days is flagged', async () => hasClass(page.locator('#node-input-warnDays'), 'input-error'));
    await typeInto('#node-input-warnDays', '3');
    await closeNode('cancel');
    assert.equal(
      await page.evaluate(() => {
        let n = 0;
        RED.nodes.eachConfig(() => void n++);
        return n;
      }),
      0,
      'cancelled dialogs add no config node',
    );
    assertNoProblems();
  });

  it('authenticated request: invalid without a config node, valid with one; the platform select shows only its row', async () => {
    await importNodes([requestNode('req1', 200, 120)]);
    assert.equal(await nodeValue('req1', 'valid'), false);
    assert.ok(
      (await nodeValue<string[]>('req1', 'validationErrors')).includes('Choose or add a config node for Insights Hub app'),
      JSON.stringify(await nodeValue('req1', 'validationErrors')),
    );
    // The workspace shows the node's error badge.
    const badge = page.locator('g.red-ui-flow-node-group[id="req1"] .red-ui-flow-node-error');
    assert.equal(await badge.isVisible(), true);

    await importNodes([IH_APP]);
    assert.equal(await nodeValue('ihapp1', 'valid'), true, 'the imported config node is valid');
    await openNode('req1');
    assert.deepEqual(await shownPlatformRows(), ['insights-hub-app']);
    const select = page.locator('#node-input-insightsHubApp');
    assert.equal(await hasClass(select, 'input-error'), true, 'no config node chosen: flagged in the dialog');
    await select.selectOption('ihapp1');
    await waitUntil('the config select is no longer flagged', async () => !(await hasClass(select, 'input-error')));
    await closeNode('ok');
    assert.equal(await nodeValue('req1', 'insightsHubApp'), 'ihapp1');
    assert.equal(await nodeValue('req1', 'valid'), true, JSON.stringify(await nodeValue('req1', 'validationErrors')));
    await waitUntil('the error badge is gone', async () => !(await badge.isVisible()));

    // Switching the platform shows that platform's config row alone; Cancel changes nothing.
    await openNode('req1');
    await page.locator('#node-input-platform').selectOption('cisco-ei');
    assert.deepEqual(await shownPlatformRows(), ['cisco-ei']);
    await page.locator('#node-input-platform').selectOption('mbp');
    assert.deepEqual(await shownPlatformRows(), ['mbp']);
    await closeNode('cancel');
    assert.equal(await nodeValue('req1', 'platform'), 'insights-hub-app');
    assert.equal(await nodeValue('req1', 'insightsHubApp'), 'ihapp1');
    assert.equal(await nodeValue('req1', 'valid'), true);
    assertNoProblems();
  });

  it('Insights Hub app dialog: flags a gateway without scheme; "use environment" hides the app fields and credentials', async () => {
    await importNodes([requestNode('req1', 200, 120)]);
    await openNode('req1');
    // The "+" beside the config select opens the dialog of a new config node.
    await page.locator('#node-input-btn-insightsHubApp-add').click();
    const gateway = page.locator('#node-config-input-gateway');
    await gateway.waitFor({ state: 'visible' });

    await typeInto('#node-config-input-gateway', 'gateway.example');
    await waitUntil('"gateway.example" is flagged', () => hasClass(gateway, 'input-error'));
    await typeInto('#node-config-input-gateway', 'https://gateway.example');
    await waitUntil('"https://gateway.example" is accepted', async () => !(await hasClass(gateway, 'input-error')));
    await typeInto('#node-config-input-gateway', 'gateway.example');
    await waitUntil('"gateway.example" is flagged again', () => hasClass(gateway, 'input-error'));

    const appFields = ['appName', 'appVersion', 'hostTenant', 'userTenant', 'clientId', 'clientSecret'].map((f) => `#node-config-input-${f}`);
    const alwaysShown = ['gateway', 'useEnv', 'tls', 'proxy', 'name'].map((f) => `#node-config-input-${f}`);
    const visible = async (selectors: string[]) => Promise.all(selectors.map((s) => page.locator(s).isVisible()));
    assert.deepEqual(
      await visible(appFields),
      appFields.map(() => true),
    );
    assert.equal(await page.locator('.iiot-ih-app-env').isVisible(), false);

    await page.locator('#node-config-input-useEnv').check();
    await waitUntil('the app fields are hidden', async () => (await visible(appFields)).every((v) => !v));
    assert.deepEqual(
      await visible(alwaysShown),
      alwaysShown.map(() => true),
    );
    assert.equal(await page.locator('.iiot-ih-app-env').isVisible(), true, 'the tip about the MDSP_* variables is shown');
    // With the environment, an empty gateway is fine, a malformed one is not.
    assert.equal(await hasClass(gateway, 'input-error'), true, 'a malformed gateway stays flagged');
    await typeInto('#node-config-input-gateway', '');
    await waitUntil('an empty gateway is accepted with the environment', async () => !(await hasClass(gateway, 'input-error')));

    // Saved like that (no app fields at all), the config node and the request node are valid.
    await closeConfig('ok');
    const configId = await page.locator('#node-input-insightsHubApp').inputValue();
    assert.notEqual(configId, '_ADD_');
    assert.equal(await nodeValue(configId, 'useEnv'), true);
    assert.equal(await nodeValue(configId, 'valid'), true, JSON.stringify(await nodeValue(configId, 'validationErrors')));
    await closeNode('ok');
    assert.equal(await nodeValue('req1', 'valid'), true, JSON.stringify(await nodeValue('req1', 'validationErrors')));

    // Unticked again, the empty app fields are required.
    await openNode('req1');
    await page.locator('#node-input-btn-insightsHubApp-edit').click();
    await gateway.waitFor({ state: 'visible' });
    assert.equal(await page.locator('#node-config-input-useEnv').isChecked(), true);
    assert.deepEqual(
      await visible(appFields),
      appFields.map(() => false),
      'reopened with the environment: the app fields stay hidden',
    );
    await page.locator('#node-config-input-useEnv').uncheck();
    await waitUntil('the app fields are shown again', async () => (await visible(appFields)).every((v) => v));
    await waitUntil('the empty gateway is flagged without the environment', () => hasClass(gateway, 'input-error'));
    await closeConfig('cancel');
    await closeNode('cancel');
    assert.equal(await nodeValue(configId, 'useEnv'), true, 'Cancel keeps the saved settings');
    assertNoProblems();
  });

  it('Cisco EI dialog: "Look up tenants" offers the demo user\'s two tenants; picking one fills the tenant field', async () => {
    const demo = sandbox!.demo.ciscoEi;
    assert.equal(demo.tenants.length, 2, 'the sandbox demo user has two tenants');
    await importNodes([tokenNode('tok1', 'cisco-ei', 200, 120)]);
    assert.equal(await nodeValue('tok1', 'valid'), false);
    await openNode('tok1');
    assert.deepEqual(await shownPlatformRows(), ['cisco-ei']);
    await page.locator('#node-input-btn-ciscoEi-add').click();
    await page.locator('#node-config-input-server').waitFor({ state: 'visible' });

    // The cluster select fills the server field; another URL sets it to "other URL".
    const cluster = page.locator('#node-config-iiot-cisco-ei-cluster');
    await cluster.selectOption('https://eu.ciscoiot.com');
    assert.equal(await page.locator('#node-config-input-server').inputValue(), 'https://eu.ciscoiot.com');
    await typeInto('#node-config-input-server', sandbox!.url);
    assert.equal(await cluster.inputValue(), '');
    await typeInto('#node-config-input-username', demo.username);
    await typeInto('#node-config-input-password', demo.password);
    const tenants = page.locator('#node-config-iiot-cisco-ei-tenants');
    assert.equal(await tenants.isVisible(), false);
    const answered = page.waitForResponse((res) => new URL(res.url()).pathname === '/iiot-auth/cisco-ei/tenants');
    await page.locator('#node-config-iiot-cisco-ei-lookup').click();
    assert.equal((await answered).status(), 200);
    await tenants.waitFor({ state: 'visible' });
    fs.mkdirSync(artifacts, { recursive: true });
    await page
      .locator('.red-ui-tray')
      .last()
      .screenshot({ path: path.join(artifacts, 'editor-cisco-ei-dialog.png') });
    const options = await tenants.locator('option').evaluateAll((els) => els.map((o) => ({ value: (o as HTMLOptionElement).value, text: o.textContent })));
    assert.deepEqual(options, [{ value: '', text: 'choose one of 2 tenants' }, ...demo.tenants.map((t) => ({ value: t.id, text: `${t.name} (${t.id})` }))]);
    assert.equal(await page.locator('#node-config-input-tenantId').inputValue(), '', 'two tenants: none is taken without asking');
    assert.equal(await page.locator('#node-config-iiot-cisco-ei-lookup').isEnabled(), true, 'the button is enabled again');

    const chosen = demo.tenants[1]!;
    await tenants.selectOption(chosen.id);
    assert.equal(await page.locator('#node-config-input-tenantId').inputValue(), chosen.id);
    await waitUntil('the tenant field is accepted', async () => !(await hasClass(page.locator('#node-config-input-tenantId'), 'input-error')));

    await closeConfig('ok');
    const configId = await page.locator('#node-input-ciscoEi').inputValue();
    assert.notEqual(configId, '_ADD_');
    await closeNode('ok');
    assert.equal(await nodeValue(configId, 'server'), sandbox!.url);
    assert.equal(await nodeValue(configId, 'tenantId'), chosen.id);
    assert.equal(await nodeValue(configId, 'valid'), true, JSON.stringify(await nodeValue(configId, 'validationErrors')));
    assert.equal(await nodeValue('tok1', 'ciscoEi'), configId);
    assert.equal(await nodeValue('tok1', 'valid'), true, JSON.stringify(await nodeValue('tok1', 'validationErrors')));
    assert.equal(sandbox!.calls('ciscoEi.me'), 1, 'one look-up reached the platform');
    assertNoProblems();
  });

  it('OAuth 2.0 dialog: only the fields the client authentication needs; issuer or token URL; a key-signed client saves without a secret', async () => {
    await importNodes([{ ...requestNode('req1', 200, 120), platform: 'oauth2', oauth2: '' }]);
    await openNode('req1');
    await page.locator('#node-input-btn-oauth2-add').click();
    const method = page.locator('#node-config-input-clientAuth');
    await method.waitFor({ state: 'visible' });
    const shown = async () => ({
      secret: await page.locator('#node-config-input-clientSecret').isVisible(),
      key: await page.locator('.iiot-o2-key').isVisible(),
      tlsTip: await page.locator('.iiot-o2-tls-tip').isVisible(),
    });
    assert.equal(await method.inputValue(), 'body', 'a new config node authenticates in the body, as before');
    assert.deepEqual(await shown(), { secret: true, key: false, tlsTip: false });
    await method.selectOption('private_key_jwt');
    await waitUntil(
      'the key fields replace the secret',
      async () => JSON.stringify(await shown()) === JSON.stringify({ secret: false, key: true, tlsTip: false }),
    );
    await method.selectOption('tls_client_auth');
    await waitUntil(
      'neither secret nor key, the TLS tip',
      async () => JSON.stringify(await shown()) === JSON.stringify({ secret: false, key: false, tlsTip: true }),
    );
    await waitUntil('a TLS method without a TLS config node is flagged', () => hasClass(method, 'input-error'));
    await method.selectOption('auto');
    await waitUntil('secret and key for "automatic"', async () => JSON.stringify(await shown()) === JSON.stringify({ secret: true, key: true, tlsTip: false }));

    // Neither issuer nor token URL: the token URL is flagged; an issuer alone is enough.
    const tokenUrl = page.locator('#node-config-input-tokenUrl');
    await typeInto('#node-config-input-tokenUrl', '');
    await waitUntil('no issuer and no token URL is flagged', () => hasClass(tokenUrl, 'input-error'));
    await typeInto('#node-config-input-issuer', 'https://login.example.com/realms/factory');
    await waitUntil('an issuer alone is accepted', async () => !(await hasClass(tokenUrl, 'input-error')));

    await method.selectOption('private_key_jwt');
    await typeInto('#node-config-input-apiUrl', 'https://api.example.com');
    await typeInto('#node-config-input-clientId', 'line-7');
    await page.locator('#node-config-input-privateKey').fill('-----BEGIN PRIVATE KEY-----\neditor-test-key\n-----END PRIVATE KEY-----');
    await typeInto('#node-config-input-keyId', 'key-1');
    await closeConfig('ok');
    const configId = await page.locator('#node-input-oauth2').inputValue();
    assert.notEqual(configId, '_ADD_');
    assert.equal(await nodeValue(configId, 'clientAuth'), 'private_key_jwt');
    assert.equal(await nodeValue(configId, 'valid'), true, JSON.stringify(await nodeValue(configId, 'validationErrors')));
    await closeNode('ok');
    assert.equal(await nodeValue('req1', 'valid'), true, JSON.stringify(await nodeValue('req1', 'validationErrors')));
    assertNoProblems();
  });

  it('OAuth 2.0 resource and Insights Hub service credentials dialogs: a resource without scheme or with #fragment flagged; the gateway a URL or a region, the tenant a name', async () => {
    await importNodes([{ ...requestNode('req1', 200, 120), platform: 'oauth2', oauth2: '' }]);
    await openNode('req1');
    await page.locator('#node-input-btn-oauth2-add').click();
    const resource = page.locator('#node-config-input-resource');
    await resource.waitFor({ state: 'visible' });
    for (const [value, flagged] of [
      ['api.example.com', true],
      ['https://api.example.com/ https://historian.example/v2', false],
      ['https://api.example.com/#items', true],
      ['', false],
    ] as const) {
      await typeInto('#node-config-input-resource', value);
      await waitUntil(`"${value}" is ${flagged ? 'flagged' : 'accepted'}`, async () => (await hasClass(resource, 'input-error')) === flagged);
    }
    await closeConfig('cancel');
    await page.locator('#node-input-platform').selectOption('insights-hub-service');
    await waitUntil('only the service credentials row is shown', async () => JSON.stringify(await shownPlatformRows()) === '["insights-hub-service"]');
    await page.locator('#node-input-btn-insightsHubService-add').click();
    const gateway = page.locator('#node-config-input-gateway');
    const tenant = page.locator('#node-config-input-tenant');
    await gateway.waitFor({ state: 'visible' });
    assert.equal(await gateway.inputValue(), 'https://gateway.eu1.mindsphere.io');
    for (const [value, flagged] of [
      ['gateway.example', true],
      ['eu2', false],
      ['https://gateway.eu1.mindsphere.io', false],
    ] as const) {
      await typeInto('#node-config-input-gateway', value);
      await waitUntil(`gateway "${value}" is ${flagged ? 'flagged' : 'accepted'}`, async () => (await hasClass(gateway, 'input-error')) === flagged);
    }
    for (const [value, flagged] of [
      ['', true],
      ['evil.example', true],
      ['acme', false],
    ] as const) {
      await typeInto('#node-config-input-tenant', value);
      await waitUntil(`tenant "${value}" is ${flagged ? 'flagged' : 'accepted'}`, async () => (await hasClass(tenant, 'input-error')) === flagged);
    }
    await typeInto('#node-config-input-clientId', 'acme-svc');
    await page.locator('#node-config-input-clientSecret').fill('editor-test-service-secret');
    await closeConfig('ok');
    const configId = await page.locator('#node-input-insightsHubService').inputValue();
    assert.notEqual(configId, '_ADD_');
    assert.equal(await nodeValue(configId, 'tenant'), 'acme');
    assert.equal(await nodeValue(configId, 'valid'), true, JSON.stringify(await nodeValue(configId, 'validationErrors')));
    await closeNode('ok');
    assert.equal(await nodeValue('req1', 'valid'), true, JSON.stringify(await nodeValue('req1', 'validationErrors')));
    assertNoProblems();
  });

  it('OAuth 2.0 login: the dialog\'s "Log in" through oidc-provider\'s own login and consent pages; the dialog then shows who is logged in, and "Log out" ends it', async () => {
    const { startAuthorizationServer } = await import('../conformance/oauth2/authorization-server.js');
    const as = await startAuthorizationServer({ loginRedirectUri: `${red!.base}/iiot-auth/oauth2/callback` });
    const previous = await (await fetch(`${red!.base}/flows`)).json();
    try {
      const deployed = await fetch(`${red!.base}/flows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full' },
        body: JSON.stringify([
          { id: 'flowtab1', type: 'tab', label: 'login' },
          {
            id: 'o2login',
            type: 'iiot-oauth2',
            name: 'login test',
            issuer: as.issuer,
            apiUrl: as.apiUrl,
            grant: 'authorization_code',
            clientAuth: 'basic',
            scope: 'openid offline_access profile',
            credentials: { clientId: as.clients.code.clientId, clientSecret: as.clients.code.clientSecret },
          },
          { ...tokenNode('tokl', 'oauth2', 200, 120), z: 'flowtab1', oauth2: 'o2login' },
        ]),
      });
      assert.ok(deployed.ok, await deployed.text());
      await openEditor();
      await openNode('tokl');
      await page.locator('#node-input-btn-oauth2-edit').click();
      const grant = page.locator('#node-config-input-grant');
      await grant.waitFor({ state: 'visible' });
      assert.equal(await grant.inputValue(), 'authorization_code');
      const status = page.locator('.iiot-o2-login-status');
      await waitUntil('the dialog says nobody is logged in', async () => (await status.innerText()).includes('Not logged in'));
      assert.match(await page.locator('.iiot-o2-callback').innerText(), /\/iiot-auth\/oauth2\/callback$/);

      const popupOpened = page.waitForEvent('popup');
      await page.locator('.iiot-o2-login-button').click();
      const popup = await popupOpened;
      // oidc-provider's development login page (any login, any password), then its consent page.
      await popup.locator('input[name="login"]').fill('alice');
      await popup.locator('input[name="password"]').fill('any');
      await popup.locator('button[type="submit"]').click();
      await popup.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
      const closed = popup.waitForEvent('close');
      await popup.locator('button[type="submit"]').click();
      await closed;
      await waitUntil('the dialog shows the user logged in', async () => /Logged in as User alice/.test(await status.innerText()));
      assert.match(await status.innerText(), /offline_access/);
      assert.equal(as.grantedOf(as.clients.code.clientId, 'authorization_code'), 1);
      // "Log out": shown once logged in; oidc-provider revokes the grant, and the dialog says so.
      const revoked = as.revokedGrants;
      await page.locator('.iiot-o2-logout-button').click();
      await waitUntil('the dialog says the login was ended and revoked', async () =>
        /Not logged in; the provider revoked the refresh token/.test(await status.innerText()),
      );
      assert.equal(as.revokedGrants - revoked, 1);
      assert.equal(await page.locator('.iiot-o2-logout-button').isVisible(), false);
      for (const rt of as.refreshTokens) assert.ok(!red!.output().includes(rt), 'no refresh token in the output');
      await closeConfig('cancel');
      await closeNode('cancel');
      assertNoProblems();
    } finally {
      await fetch(`${red!.base}/flows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full' },
        body: JSON.stringify(previous),
      });
      await as.stop();
    }
  });

  it('the help sidebar shows the help of get token', async () => {
    await importNodes([tokenNode('tok1', 'insights-hub-app', 200, 120)]);
    await openNode('tok1');
    // The book button in the dialog's footer opens the node's help.
    await page.locator('.red-ui-tray-footer-left button:has(i.fa-book)').click();
    const help = page.locator('.red-ui-sidebar-info .red-ui-help').filter({ hasText: 'msg.token' }).first();
    await help.waitFor({ state: 'visible' });
    const text = await help.innerText();
    assert.match(text, /Puts the selected platform's authentication on the message/);
    assert.match(text, /Keep the token secret/);
    await closeNode('cancel');
    assertNoProblems();
  });

  it('deploys a config node whose secret was typed in the dialog: the secret is in neither /flows nor flows.json', async () => {
    const secret = 'ih-secret-typed-in-the-editor-6Gq9';
    await importNodes([
      {
        id: 'inject1',
        type: 'inject',
        name: 'every hour',
        props: [{ p: 'payload' }],
        repeat: '3600',
        crontab: '',
        once: false,
        onceDelay: 0.1,
        topic: '',
        payload: '',
        payloadType: 'date',
        x: 110,
        y: 100,
        wires: [['tok1']],
      },
      tokenNode('tok1', 'insights-hub-app', 290, 100, ['req1']),
      { ...requestNode('req1', 500, 100, ['debug1']), url: '/api/assetmanagement/v3/assets' },
      {
        id: 'debug1',
        type: 'debug',
        name: '',
        active: true,
        tosidebar: true,
        console: false,
        tostatus: false,
        complete: 'payload',
        targetType: 'msg',
        statusVal: '',
        statusType: 'auto',
        x: 730,
        y: 100,
        wires: [],
      },
    ]);

    // A new config node from the get token dialog, with client ID and secret typed in.
    await openNode('tok1');
    await page.locator('#node-input-btn-insightsHubApp-add').click();
    await page.locator('#node-config-input-gateway').waitFor({ state: 'visible' });
    await typeInto('#node-config-input-gateway', 'https://gateway.eu1.mindsphere.io');
    await typeInto('#node-config-input-appName', 'iiotdemo');
    await typeInto('#node-config-input-appVersion', '1.0.0');
    await typeInto('#node-config-input-hostTenant', 'sandboxhost');
    await typeInto('#node-config-input-userTenant', 'sandboxuser');
    await typeInto('#node-config-input-clientId', 'editor-client-id');
    await typeInto('#node-config-input-clientSecret', secret);
    await closeConfig('ok');
    const configId = await page.locator('#node-input-insightsHubApp').inputValue();
    assert.notEqual(configId, '_ADD_');
    await closeNode('ok');
    // The request node uses the same config node.
    await openNode('req1');
    await page.locator('#node-input-insightsHubApp').selectOption(configId);
    await closeNode('ok');
    const invalid = await page.evaluate(() => {
      const bad: string[] = [];
      RED.nodes.eachNode((n) => void (n.valid === false && bad.push(n.id)));
      RED.nodes.eachConfig((n) => void (n.valid === false && bad.push(n.id)));
      return bad;
    });
    assert.deepEqual(invalid, [], 'every node is valid before the deploy');

    const deployed = page.waitForResponse((res) => res.request().method() === 'POST' && new URL(res.url()).pathname === '/flows');
    // Watched from before the click: the notification fades after a few seconds,
    // which a loaded machine could spend on the waits below.
    const notified = page.locator('.red-ui-notification', { hasText: 'Successfully deployed' }).waitFor({ state: 'visible' });
    await page.locator('#red-ui-header-button-deploy').click();
    assert.equal((await deployed).status(), 200);
    await notified;
    // Deployed: nothing left to deploy, and the shade over the editor during the deploy is gone.
    await page.waitForFunction(() => !RED.nodes.dirty() && !$('#red-ui-header-shade').is(':visible'));

    // A click on the empty canvas deselects the imported nodes; then the picture.
    await page.locator('#red-ui-workspace-chart').click({ position: { x: 500, y: 400 } });
    await page.waitForFunction(() => RED.view.selection().nodes === undefined);
    fs.mkdirSync(artifacts, { recursive: true });
    await page.locator('#red-ui-workspace').screenshot({ path: path.join(artifacts, 'editor.png') });

    // The runtime has the secret (so it was sent), but shows it nowhere.
    const credentials = (await (await fetch(`${red!.base}/credentials/iiot-insights-hub-app/${configId}`)).json()) as Record<string, unknown>;
    assert.deepEqual(credentials, { clientId: 'editor-client-id', has_clientSecret: true });
    const apiFlows = await (await fetch(`${red!.base}/flows`)).text();
    assert.ok(apiFlows.includes(configId) && apiFlows.includes('iiot-insights-hub-app'), 'the config node was deployed');
    assert.ok(!apiFlows.includes(secret), 'the secret is not in GET /flows');
    const flowsFile = fs.readFileSync(path.join(red!.userDir, 'flows.json'), 'utf8');
    assert.ok(flowsFile.includes(configId));
    assert.ok(!flowsFile.includes(secret), 'the secret is not in flows.json');
    const credentialsFile = fs.readFileSync(path.join(red!.userDir, 'flows_cred.json'), 'utf8');
    assert.ok(!credentialsFile.includes(secret), 'flows_cred.json holds the secret encrypted');
    assert.ok(!red!.output().includes(secret), 'nor is it in the runtime log');
    assertNoProblems();
  });
  it('an imported example (no credentials): the config node is invalid, naming them; the action nodes show the triangle; entering them fixes both', async () => {
    const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'DataTrails token and API call.json'), 'utf8')) as Array<{
      id: string;
      type: string;
    }>;
    await importNodes(example.filter((n) => n.type !== 'tab'));
    const config = example.find((n) => n.type === 'iiot-datatrails')!.id;
    const token = example.find((n) => n.type === 'iiot-token')!.id;
    // The editor learns whether credentials are set from the runtime (asynchronously).
    await waitUntil('the config node is invalid', async () => (await nodeValue(config, 'valid')) === false);
    assert.deepEqual(await nodeValue(config, 'validationErrors'), ['Missing credentials: Client ID, Client secret. Open the config node and enter them']);
    await waitUntil('the get token node is invalid', async () => (await nodeValue(token, 'valid')) === false);
    assert.deepEqual(await nodeValue(token, 'validationErrors'), ['The config node for DataTrails has invalid settings: open it and fix them']);
    const badge = page.locator(`g.red-ui-flow-node-group[id="${token}"] .red-ui-flow-node-error`);
    await waitUntil('the triangle shows on get token', () => badge.isVisible());

    // In its dialog, the empty credential fields are flagged; filled in, the marks go.
    await openNode(token);
    await page.locator('#node-input-btn-dataTrails-edit').click();
    const clientId = page.locator('#node-config-input-clientId');
    const secret = page.locator('#node-config-input-clientSecret');
    await clientId.waitFor({ state: 'visible' });
    await waitUntil('both fields are flagged', async () => (await hasClass(clientId, 'input-error')) && (await hasClass(secret, 'input-error')));
    await typeInto('#node-config-input-clientId', sandbox!.demo.dataTrails.clientId);
    await typeInto('#node-config-input-clientSecret', sandbox!.demo.dataTrails.clientSecret);
    await waitUntil('neither is flagged', async () => !(await hasClass(clientId, 'input-error')) && !(await hasClass(secret, 'input-error')));
    await closeConfig('ok');
    await closeNode('ok');
    assert.equal(await nodeValue(config, 'valid'), true, JSON.stringify(await nodeValue(config, 'validationErrors')));
    assert.equal(await nodeValue(token, 'valid'), true, JSON.stringify(await nodeValue(token, 'validationErrors')));
    await waitUntil('the triangle is gone', async () => !(await badge.isVisible()));
    assertNoProblems();
  });

  it('Insights Hub agent dialog: a pasted SDK state file is told from a boarding configuration and says what adoption does', async () => {
    await importNodes([tokenNode('toksdk', 'insights-hub-agent', 200, 460)]);
    await openNode('toksdk');
    await page.locator('#node-input-btn-insightsHubAgent-add').click();
    const field = page.locator('#node-config-input-boardingConfig');
    await field.waitFor({ state: 'visible' });
    const content = {
      baseUrl: 'https://southgate.eu1.mindsphere.io',
      iat: 'eyJ.editor.iat',
      clientCredentialProfile: ['RSA_3072'],
      clientId: 'agent1',
      tenant: 'tenant1',
    };
    const info = page.locator('#node-config-iiot-ih-agent-boarding-info');
    await typeInto('#node-config-input-boardingConfig', JSON.stringify({ content, expiration: '2020-01-01T00:00:00.000Z' }));
    await waitUntil('a boarding configuration with an expired IAT warns', async () => /expired/.test(await info.innerText()));
    const registration = {
      client_id: 'agent1',
      client_secret_expires_at: 1,
      registration_access_token: 'rat',
      registration_client_uri: `${content.baseUrl}/api/agentmanagement/v3/register/agent1`,
    };
    await typeInto(
      '#node-config-input-boardingConfig',
      JSON.stringify({ content, expiration: '2020-01-01T00:00:00.000Z', response: registration, recovery: [] }),
    );
    await waitUntil('the SDK state file is recognized', async () => /An SDK state file: this node adopts/.test(await info.innerText()));
    assert.doesNotMatch(await info.innerText(), /expired/, 'its used IAT is no concern');
    assert.equal(await page.locator('#node-config-input-profile').inputValue(), 'RSA_3072', 'the profile is taken from the file');
    assert.equal(await hasClass(field, 'input-error'), false);
    await closeConfig('cancel');
    await closeNode('cancel');
    assertNoProblems();
  });

  it("Insights Hub agent dialog, in German: the runtime checks the pasted text; its findings in the catalog's words; the secrets go to its check only", async () => {
    await openEditor('de-DE');
    const checks: string[] = [];
    page.on('request', (req) => {
      if (new URL(req.url()).pathname === '/iiot-auth/insights-hub-agent/check') checks.push(req.postData() ?? '');
    });
    await importNodes([tokenNode('tokde', 'insights-hub-agent', 200, 460)]);
    await openNode('tokde');
    await page.locator('#node-input-btn-insightsHubAgent-add').click();
    const boarding = page.locator('#node-config-input-boardingConfig');
    const key = page.locator('#node-config-input-privateKey');
    await boarding.waitFor({ state: 'visible' });
    assert.equal(await key.isVisible(), false, 'SHARED_SECRET: no key row');
    /** The message the editor shows when the pointer is on a flagged field. */
    const tooltipOf = async (field: Locator, text: string) => {
      // The tooltip opens on the pointer entering the field: from outside it, whatever was under the pointer before.
      await page.mouse.move(1, 1);
      await field.hover();
      await page.locator('.red-ui-popover', { hasText: text }).first().waitFor({ state: 'visible' });
    };

    await typeInto('#node-config-input-boardingConfig', '{"content": ');
    await waitUntil('not JSON: flagged', () => hasClass(boarding, 'input-error'));
    await tooltipOf(boarding, 'Kein gültiges JSON: die ganze Boarding-Konfiguration einfügen');

    const content = {
      baseUrl: 'https://southgate.eu1.mindsphere.io',
      iat: 'eyJ.editor-iat-de.sig',
      clientCredentialProfile: ['RSA_3072'],
      clientId: 'agent-de',
      tenant: 'tenant1',
    };
    await typeInto('#node-config-input-boardingConfig', JSON.stringify({ content, expiration: '2099-01-01T00:00:00.000Z' }));
    await waitUntil('an RSA_3072 configuration is taken', async () => (await page.locator('#node-config-input-profile').inputValue()) === 'RSA_3072');
    assert.equal(await hasClass(boarding, 'input-error'), false);
    assert.match(
      await page.locator('#node-config-iiot-ih-agent-boarding-info').innerText(),
      /^Agent agent-de, Tenant tenant1, https:\/\/southgate\.eu1\.mindsphere\.io\. IAT gültig bis /,
    );
    await key.waitFor({ state: 'visible' });
    // A profile the configuration does not allow is flagged.
    await page.locator('#node-config-input-profile').selectOption('SHARED_SECRET');
    await waitUntil('the other profile is flagged', () => hasClass(page.locator('#node-config-input-profile'), 'input-error'));
    await tooltipOf(page.locator('#node-config-input-profile'), 'Die Boarding-Konfiguration ist für RSA_3072: dieses Profil wählen');
    await page.locator('#node-config-input-profile').selectOption('RSA_3072');
    await waitUntil('RSA_3072 is accepted', async () => !(await hasClass(page.locator('#node-config-input-profile'), 'input-error')));

    const small = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await typeInto('#node-config-input-privateKey', small);
    await waitUntil('a 2048-bit key is flagged', () => hasClass(key, 'input-error'));
    await tooltipOf(key, 'Dieser RSA-Schlüssel hat 2048 Bit: RSA_3072 braucht 3072 (openssl genrsa 3072)');
    fs.mkdirSync(artifacts, { recursive: true });
    await page
      .locator('.red-ui-tray')
      .last()
      .screenshot({ path: path.join(artifacts, 'editor-agent-dialog-de.png') });

    // Every text was checked by the runtime, each field on its own; what came back is no secret.
    assert.ok(
      checks.some((body) => body.includes('editor-iat-de')),
      'the boarding configuration was checked',
    );
    assert.ok(
      checks.every((body) => Object.keys(JSON.parse(body) as object).length === 1),
      'one field per check',
    );
    assert.ok(!red!.output().includes('editor-iat-de'), 'the runtime logs no pasted text');
    await closeConfig('cancel');
    await closeNode('cancel');
    assertNoProblems();
  });

  it('in German, the nodes\' status texts are German: "angemeldet", "Zugangsdaten fehlen"', async () => {
    await openEditor('de-DE');
    const dt = sandbox!.demo.dataTrails;
    const inject = (id: string, y: number, to: string) => ({
      id,
      type: 'inject',
      name: '',
      props: [{ p: 'payload' }],
      repeat: '',
      crontab: '',
      once: true,
      onceDelay: 0.5,
      topic: '',
      payload: '',
      payloadType: 'date',
      x: 110,
      y,
      wires: [[to]],
    });
    await importNodes([
      {
        id: 'dtok',
        type: 'iiot-datatrails',
        name: 'with credentials',
        url: sandbox!.url,
        tls: '',
        proxy: '',
        credentials: { clientId: dt.clientId, clientSecret: dt.clientSecret },
      },
      { id: 'dtnone', type: 'iiot-datatrails', name: 'without credentials', url: sandbox!.url, tls: '', proxy: '' },
      inject('injde1', 300, 'tokde1'),
      { ...tokenNode('tokde1', 'datatrails', 320, 300), dataTrails: 'dtok' },
      inject('injde2', 380, 'tokde2'),
      { ...tokenNode('tokde2', 'datatrails', 320, 380), dataTrails: 'dtnone' },
    ]);
    await page.evaluate(() => RED.nodes.dirty(true));
    const deployed = page.waitForResponse((res) => res.request().method() === 'POST' && new URL(res.url()).pathname === '/flows');
    await page.locator('#red-ui-header-button-deploy').click();
    // A config node without credentials is invalid: the editor asks before deploying it.
    await page.locator('#red-ui-deploy-dialog-confirm-deploy-deploy').click();
    assert.equal((await deployed).status(), 200);
    const statusOf = (id: string) => page.locator(`g.red-ui-flow-node-group[id="${id}"] .red-ui-flow-node-status-label`);
    await waitUntil('get token shows "angemeldet"', async () => (await statusOf('tokde1').textContent()) === 'angemeldet');
    await waitUntil('the one without credentials shows "Zugangsdaten fehlen"', async () => (await statusOf('tokde2').textContent()) === 'Zugangsdaten fehlen');
    fs.mkdirSync(artifacts, { recursive: true });
    await page.locator('#red-ui-workspace').screenshot({ path: path.join(artifacts, 'editor-de-status.png') });
    assertNoProblems();
  });
});
