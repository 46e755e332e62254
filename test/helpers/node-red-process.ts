import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deadPort } from './servers.js';
import { waitFor } from './wait.js';

/**
 * A real Node-RED process with this package installed in a fresh user
 * directory (as a container starts): settings from the test, flows deployed
 * through the admin API (credentials travel with them, as from the editor).
 * Everything the process prints is kept, to search it for secrets.
 */
const root = path.resolve(__dirname, '..', '..', '..');

function nodeRedDir(): string {
  const file = process.env.NODE_RED_PATH ? require.resolve(process.env.NODE_RED_PATH) : require.resolve('node-red');
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'node-red') return dir;
  }
  throw new Error(`no node-red package above ${file}`);
}

export class NodeRedProcess {
  output = '';
  private constructor(
    readonly base: string,
    readonly userDir: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(settings: Record<string, unknown>): Promise<NodeRedProcess> {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-auth-nr-'));
    fs.mkdirSync(path.join(userDir, 'node_modules'));
    fs.symlinkSync(root, path.join(userDir, 'node_modules', 'node-red-contrib-iiot-auth'), 'dir');
    const port = await deadPort();
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      `module.exports = ${JSON.stringify({ uiHost: '127.0.0.1', uiPort: port, flowFile: 'flows.json', credentialSecret: 'a-test-credential-secret', logging: { console: { level: 'info' } }, ...settings })};\n`,
    );
    const child = spawn(process.execPath, [path.join(nodeRedDir(), 'red.js'), '--userDir', userDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const red = new NodeRedProcess(`http://127.0.0.1:${port}`, userDir, child);
    child.stdout!.on('data', (d: Buffer) => (red.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (red.output += d.toString()));
    const answers = async () => {
      if (child.exitCode !== null) throw new Error(`it exited with ${child.exitCode}`);
      return fetch(`${red.base}/flows`).then(
        (res) => res.ok,
        () => false,
      ); // refused: not up yet
    };
    try {
      await waitFor(answers, { timeoutMs: 60_000, intervalMs: 200, what: `Node-RED to answer ${red.base}/flows` });
    } catch (err) {
      await red.stop();
      throw new Error(`Node-RED did not start (${(err as Error).message}):\n${red.output}`);
    }
    return red;
  }

  async deploy(flows: Record<string, unknown>[]): Promise<void> {
    const res = await fetch(`${this.base}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full' },
      body: JSON.stringify(flows),
    });
    if (!res.ok) throw new Error(`deploy failed: ${res.status} ${await res.text()}`);
  }

  /** Stops the process (SIGINT: Node-RED closes its nodes) and removes its user directory. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGINT');
      await exited;
    }
    fs.rmSync(this.userDir, { recursive: true, force: true });
  }
}
