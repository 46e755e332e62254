import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { deadPort } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The package as a user gets it: a real Node-RED process (not the test
 * helper) loads it from its user directory, with adminAuth on. Checks what
 * only a whole runtime shows: the node types register from package.json, the
 * admin endpoint's permission check, credentials kept out of flows.json and
 * the admin API, and nothing secret in the process's output.
 */
const root = path.resolve(__dirname, '..', '..', '..');
const nodeRedDir = packageRoot(process.env.NODE_RED_PATH ? require.resolve(process.env.NODE_RED_PATH) : require.resolve('node-red'));
/** Node-RED's package folder (where red.js, its command line, lives), from any file inside it. */
function packageRoot(file: string): string {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'node-red') return dir;
  }
  throw new Error(`no node-red package above ${file}`);
}
// bcryptjs comes with Node-RED; adminAuth wants bcrypt hashes.
const bcrypt = require(require.resolve('bcryptjs', { paths: [nodeRedDir] })) as { hashSync(s: string, rounds: number): string };

const ADMIN_PASSWORD = 'admin-password-for-tests';
const VIEWER_PASSWORD = 'viewer-password-for-tests';

describe('a real Node-RED runtime with adminAuth', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  let userDir: string;
  let child: ChildProcess;
  let output = '';
  let base: string;

  before(async () => {
    sandbox = await startSandbox();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-auth-nr-'));
    fs.mkdirSync(path.join(userDir, 'node_modules'));
    fs.symlinkSync(root, path.join(userDir, 'node_modules', 'node-red-contrib-iiot-auth'), 'dir');
    const port = await deadPort();
    base = `http://127.0.0.1:${port}`;
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      `module.exports = ${JSON.stringify({
        uiHost: '127.0.0.1',
        uiPort: port,
        flowFile: 'flows.json',
        credentialSecret: 'a-test-credential-secret',
        logging: { console: { level: 'info' } },
        adminAuth: {
          type: 'credentials',
          users: [
            { username: 'admin', password: bcrypt.hashSync(ADMIN_PASSWORD, 4), permissions: '*' },
            { username: 'viewer', password: bcrypt.hashSync(VIEWER_PASSWORD, 4), permissions: 'read' },
          ],
        },
      })};\n`,
    );
    const redJs = path.join(nodeRedDir, 'red.js');
    child = spawn(process.execPath, [redJs, '--userDir', userDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const answers = () =>
      fetch(`${base}/auth/login`).then(
        (res) => res.ok,
        () => false,
      ); // refused: not up yet
    await waitFor(answers, { timeoutMs: 45_000, intervalMs: 200, what: () => `Node-RED to start:\n${output}` });
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
    }
    await sandbox?.stop();
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function login(username: string, password: string, scope = '*'): Promise<string> {
    const res = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  function lookUp(token: string | undefined, body: Record<string, unknown>) {
    return fetch(`${base}/iiot-auth/cisco-ei/tenants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  }

  it('loads every node type listed in package.json, without errors', async () => {
    const token = await login('admin', ADMIN_PASSWORD);
    const res = await fetch(`${base}/nodes`, { headers: { accept: 'application/json', authorization: `Bearer ${token}` } });
    const sets = (await res.json()) as Array<{ module: string; types: string[]; enabled: boolean; err?: string }>;
    const ours = sets.filter((s) => s.module === 'node-red-contrib-iiot-auth');
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
    assert.deepEqual(ours.flatMap((s) => s.types).sort(), Object.keys(pkg['node-red'].nodes).sort());
    assert.ok(
      ours.every((s) => s.enabled && !s.err),
      JSON.stringify(ours),
    );
  });

  it('the tenant look-up: editors with write permission only', async () => {
    const demo = sandbox.demo.ciscoEi;
    const body = { server: sandbox.url, username: demo.username, password: demo.password };
    assert.equal((await lookUp(undefined, body)).status, 401);
    const viewer = await lookUp(await login('viewer', VIEWER_PASSWORD, 'read'), body);
    assert.equal(viewer.status, 401);
    const admin = await lookUp(await login('admin', ADMIN_PASSWORD), body);
    assert.equal(admin.status, 200);
    assert.deepEqual(((await admin.json()) as { tenants: unknown }).tenants, demo.tenants);
    assert.equal(sandbox.calls('ciscoEi.me'), 1, 'only the permitted call reached the platform');
  });

  it('the tenant look-up explains wrong credentials and missing fields', async () => {
    const token = await login('admin', ADMIN_PASSWORD);
    const wrong = await lookUp(token, { server: sandbox.url, username: sandbox.demo.ciscoEi.username, password: 'not-the-password' });
    assert.equal(wrong.status, 502);
    const error = (await wrong.json()) as { code: string; message: string };
    assert.equal(error.code, 'AUTH_REJECTED');
    assert.ok(!JSON.stringify(error).includes('not-the-password'));
    const missing = await lookUp(token, { server: sandbox.url, username: '' });
    assert.equal(missing.status, 400);
    assert.match(((await missing.json()) as { message: string }).message, /lacks the username and password/);
  });

  it('keeps credentials out of flows.json, the admin API and the log; uses stored ones for the look-up', async () => {
    const token = await login('admin', ADMIN_PASSWORD);
    const demo = sandbox.demo.ciscoEi;
    const flows = [
      { id: 'tab1', type: 'tab', label: 'test' },
      { id: 'ei1', type: 'iiot-cisco-ei', server: sandbox.url, tenantId: demo.tenantId, credentials: { username: demo.username, password: demo.password } },
      { id: 'tok1', type: 'iiot-token', z: 'tab1', platform: 'cisco-ei', ciscoEi: 'ei1', wires: [] },
    ];
    const deploy = await fetch(`${base}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'node-red-deployment-type': 'full' },
      body: JSON.stringify(flows),
    });
    assert.equal(deploy.status, 204);

    const onDisk = fs.readFileSync(path.join(userDir, 'flows.json'), 'utf8') + fs.readFileSync(path.join(userDir, 'flows_cred.json'), 'utf8');
    assert.ok(onDisk.includes('iiot-cisco-ei'));
    assert.ok(!onDisk.includes(demo.password), 'the password is not stored in clear');
    const apiFlows = await (await fetch(`${base}/flows`, { headers: { authorization: `Bearer ${token}` } })).text();
    assert.ok(!apiFlows.includes(demo.password));
    const creds = (await (await fetch(`${base}/credentials/iiot-cisco-ei/ei1`, { headers: { authorization: `Bearer ${token}` } })).json()) as Record<
      string,
      unknown
    >;
    assert.deepEqual(creds, { username: demo.username, has_password: true });

    // The dialog sends __PWRD__ for an unchanged password: the stored one is used.
    const stored = await lookUp(token, { id: 'ei1', server: sandbox.url, username: demo.username, password: '__PWRD__' });
    assert.equal(stored.status, 200, stored.status === 200 ? '' : await stored.text());
    assert.ok(!output.includes(demo.password), 'nothing secret in the runtime log');
  });
});
