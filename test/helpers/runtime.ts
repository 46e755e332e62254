import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/index.js';
import { FlowHarness as H } from './flow.js';

/**
 * The set-up most node tests share: a sandbox and a Node-RED runtime for the
 * whole describe block, both stopped after it, and tidied after each test. Call it inside `describe`;
 * read `sandbox` in the tests (it exists once `before` has run).
 */
export interface SandboxAndRuntime {
  readonly sandbox: Sandbox;
}

export function withSandboxAndRuntime(options: { settings?: Record<string, unknown>; sandbox?: SandboxOptions } = {}): SandboxAndRuntime {
  let sandbox: Sandbox | undefined;
  before(async () => {
    sandbox = await startSandbox(options.sandbox);
    await H.start(options.settings);
  });
  // Every test leaves a clean runtime and sandbox: its flow unloaded, no faults, counts at zero.
  afterEach(async () => {
    await H.unload();
    sandbox?.clearFaults();
    sandbox?.resetCalls();
  });
  after(async () => {
    await H.stop();
    await sandbox?.stop();
  });
  return {
    get sandbox(): Sandbox {
      if (!sandbox) throw new Error('the sandbox is not started yet: read it in a test or a hook, not in describe()');
      return sandbox;
    },
  };
}
