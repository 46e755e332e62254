/**
 * `npm start`: the sandbox and a Node-RED runtime with this package loaded and
 * the example flows deployed against the sandbox, demo credentials filled in.
 * Open http://127.0.0.1:1880 and watch the debug sidebar.
 *
 * The user directory is `.demo/` in the project (git-ignored); delete it to
 * start over. The example flows in `examples/` carry no credentials: the
 * demo adds the sandbox's, in `.demo/flows_cred.json`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PLATFORM_DECLARATIONS } from '../src/platforms/index.js';
import { INSIGHTS_HUB_AGENT } from '../src/platforms/insights-hub-agent/declaration.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';

const root = path.resolve(__dirname, '..', '..');
const userDir = path.join(root, '.demo');
const uiPort = Number(process.env.PORT || 1880);
const sandboxPort = Number(process.env.SANDBOX_PORT || 1881);
/** The examples' config nodes point at the sandbox's default address. */
const EXAMPLE_SANDBOX_URL = 'http://127.0.0.1:1881';

type FlowNode = Record<string, unknown> & { id: string; type: string };

/**
 * The demo credentials of a config node, from the sandbox: its platform
 * declaration names the credential fields, and the sandbox's demo set of the
 * same name (the declaration's property) has their values.
 */
function credentialsFor(node: FlowNode, sandbox: Sandbox, demoAgentBoarding: string): Record<string, string> | undefined {
  if (node.type === INSIGHTS_HUB_AGENT.configType) return { boardingConfig: demoAgentBoarding };
  const declaration = PLATFORM_DECLARATIONS.find((p) => p.configType === node.type);
  const demo = declaration ? (sandbox.demo as unknown as Record<string, Record<string, string> | undefined>)[declaration.property] : undefined;
  if (!declaration || !demo) return undefined;
  return Object.fromEntries(Object.keys(declaration.credentials).map((field) => [field, demo[field] ?? '']));
}

function writeDemoUserDir(sandbox: Sandbox): void {
  fs.mkdirSync(path.join(userDir, 'node_modules'), { recursive: true });
  const link = path.join(userDir, 'node_modules', 'node-red-contrib-iiot-auth');
  if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `// Written by scripts/demo.js for the local demo only.
module.exports = {
  uiHost: '127.0.0.1',
  uiPort: ${uiPort},
  flowFile: 'flows.json',
  // The demo's credentials are the sandbox's public demo values; a real
  // installation keeps credentialSecret set so flows_cred.json is encrypted.
  credentialSecret: false,
  // Nothing modal over the editor on the first visit: no tour, no
  // "Enable update notifications?" prompt.
  editorTheme: { tours: false, projects: { enabled: false } },
  telemetry: { enabled: false, updateNotification: false },
  iiotAuth: { backoffMaxMs: 10000 },
};
`,
  );

  const examples = exampleFlows(sandbox);
  const flowFile = path.join(userDir, 'flows.json');
  if (fs.existsSync(flowFile)) console.log(`Keeping the flows in ${flowFile} (delete .demo/ to reset the demo).`);
  else fs.writeFileSync(flowFile, JSON.stringify(examples, null, 2));

  // The sandbox forgets everything when it stops, so its demo agent is new at
  // every start: fresh credentials for the examples' config nodes (others in
  // flows_cred.json are kept), and no state of the previous run's agent.
  fs.rmSync(path.join(userDir, 'iiot-auth'), { recursive: true, force: true });
  const demoAgent = sandbox.agents.create({ name: 'Demo agent', securityProfile: 'SHARED_SECRET' });
  const boarding = JSON.stringify(sandbox.agents.boardingConfiguration(demoAgent.id));
  const credFile = path.join(userDir, 'flows_cred.json');
  const credentials = fs.existsSync(credFile) ? (JSON.parse(fs.readFileSync(credFile, 'utf8')) as Record<string, Record<string, string>>) : {};
  for (const node of examples) {
    const creds = credentialsFor(node, sandbox, boarding);
    if (creds) credentials[node.id] = creds;
  }
  fs.writeFileSync(credFile, JSON.stringify(credentials, null, 2));
}

/** Every example flow, pointed at the running sandbox. */
function exampleFlows(sandbox: Sandbox): FlowNode[] {
  const examples = path.join(root, 'examples');
  return fs
    .readdirSync(examples)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((file) => JSON.parse(fs.readFileSync(path.join(examples, file), 'utf8').split(EXAMPLE_SANDBOX_URL).join(sandbox.url)) as FlowNode[]);
}

async function main(): Promise<void> {
  const sandbox = await startSandbox({ port: sandboxPort });
  console.log(`Sandbox (imitation of the platforms) at ${sandbox.url}`);
  writeDemoUserDir(sandbox);
  const nodeRed = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', userDir], { stdio: 'inherit' });
  console.log(`Node-RED starting at http://127.0.0.1:${uiPort} (Ctrl-C stops both)`);
  const stop = () => {
    nodeRed.kill('SIGINT');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  nodeRed.on('exit', (code) => {
    void sandbox.stop().then(() => process.exit(code ?? 0));
  });
}

main().catch((err: Error) => {
  console.error(`The demo could not start: ${err.message}`);
  process.exit(1);
});
