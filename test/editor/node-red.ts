import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deadPort } from '../helpers/servers.js';

/**
 * A real Node-RED process for the editor tests, started as in
 * test/integration/runtime.test.ts (kept separate so that test stays as it
 * is): red.js of the Node-RED that NODE_RED_PATH names (else the
 * devDependency), a temporary user directory whose node_modules links this
 * package, a free loopback port. Settings from the caller (adminAuth, say).
 */
export interface NodeRedProcess {
  /** http://127.0.0.1:<port> */
  base: string;
  userDir: string;
  /** Node-RED's version, as its package.json says. */
  version: string;
  /** stdout and stderr so far. */
  output(): string;
  /** Stops the process and removes the user directory. */
  stop(): Promise<void>;
}

const root = path.resolve(__dirname, '..', '..', '..');

/** Node-RED's package folder (where red.js, its command line, lives), from any file inside it. */
function packageRoot(file: string): string {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'node-red') return dir;
  }
  throw new Error(`no node-red package above ${file}`);
}

export async function startNodeRed(settings: Record<string, unknown> = {}): Promise<NodeRedProcess> {
  const nodeRedDir = packageRoot(process.env.NODE_RED_PATH ? require.resolve(process.env.NODE_RED_PATH) : require.resolve('node-red'));
  const version = (JSON.parse(fs.readFileSync(path.join(nodeRedDir, 'package.json'), 'utf8')) as { version: string }).version;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-auth-editor-'));
  let output = '';
  let child: ReturnType<typeof spawn> | undefined;

  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const running = child;
      const exited = new Promise((r) => running.once('exit', r));
      running.kill('SIGINT');
      const timer = setTimeout(() => running.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(userDir, { recursive: true, force: true });
  };

  try {
    fs.mkdirSync(path.join(userDir, 'node_modules'));
    fs.symlinkSync(root, path.join(userDir, 'node_modules', 'node-red-contrib-iiot-auth'), 'dir');
    const port = await deadPort();
    const base = `http://127.0.0.1:${port}`;
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      `module.exports = ${JSON.stringify({
        uiHost: '127.0.0.1',
        uiPort: port,
        flowFile: 'flows.json',
        credentialSecret: 'a-test-credential-secret',
        logging: { console: { level: 'info' } },
        // Nothing that asks the user something on the first visit.
        telemetry: { enabled: false, updateNotification: false },
        editorTheme: { tours: false },
        ...settings,
      })};\n`,
    );
    // No "did you know?" tips: on Node-RED 5 their timer can fire before the
    // info sidebar has made its tip box, a page error of the editor's own.
    fs.writeFileSync(path.join(userDir, '.config.users.json'), JSON.stringify({ _: { editor: { view: { 'view-show-tips': false } } } }));
    child = spawn(process.execPath, [path.join(nodeRedDir, 'red.js'), '--userDir', userDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    // red.js listens only once the runtime has loaded the nodes and started the flows.
    const deadline = Date.now() + 45_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Node-RED exited (${child.exitCode ?? child.signalCode}):\n${output}`);
      try {
        // 401: up, with adminAuth.
        const status = (await fetch(`${base}/settings`)).status;
        if (status === 200 || status === 401) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`Node-RED did not start within 45 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { base, userDir, version, output: () => output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
