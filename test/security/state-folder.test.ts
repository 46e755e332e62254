import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { agentFlow, ALL_MODULES, assertNoLeaks, expectError, loadAgent, outcomeOf, securitySuite, type AgentFlow } from './harness.js';

/**
 * Attack: whoever may write the agent state folder deletes or replaces an
 * agent's record (locking it out), or plants a symbolic link at a record's
 * path so that the next write, with the new client secret, lands outside the
 * folder (write-file-atomic resolved the link before writing), or at a lock's
 * path. The store refuses a folder others may write or another user owns, as
 * OpenSSH's StrictModes does, and refuses a link at a record's or a lock's
 * path, reading or writing, dangling or not: AGENT_STATE_ERROR naming it, and
 * nothing read through it, written through it, or sent.
 */
describe('security: the agent state folder is private, and no link in it is followed', function () {
  this.timeout(60_000);
  const suite = securitySuite('state-folder');
  let sandbox: Sandbox;
  let outside: string;
  before(() => {
    sandbox = suite.sandbox;
  });
  beforeEach(() => {
    // Where an attacker would want the records: outside the state folder.
    outside = fs.mkdtempSync(path.join(suite.root, 'outside-'));
  });
  const stateDir = () => suite.settings.iiotAuth.agentStateDir;

  async function send(flow: AgentFlow, node: 'agent' | 'token', msg: Record<string, unknown>) {
    return outcomeOf(flow.ids, () => H.node(flow.ids[node]).receive(msg));
  }

  /** Onboards a new agent through its flow (left loaded); its record file and the secrets in it. */
  async function onboarded(): Promise<{ flow: AgentFlow; agentId: string; file: string; secrets: string[] }> {
    const { flow, agentId, iat } = await loadAgent(sandbox);
    assert.equal((await send(flow, 'agent', { action: 'onboard' })).kind, 'output');
    const file = path.join(stateDir(), `${agentId}.json`);
    const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { registrations: Array<{ clientSecret: string; registrationAccessToken: string }> };
    return { flow, agentId, file, secrets: [iat, ...state.registrations.flatMap((r) => [r.clientSecret, r.registrationAccessToken])] };
  }

  function filesUnder(dir: string): Record<string, string> {
    const found: Record<string, string> = {};
    for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
      const full = path.join(entry.parentPath, entry.name);
      if (entry.isFile()) found[path.relative(dir, full)] = fs.readFileSync(full, 'utf8');
    }
    return found;
  }

  describe("a symbolic link at a record's path", () => {
    it("an onboarded agent's record moved outside, a link left in its place: rotate and token are refused, nothing written outside", async () => {
      const { flow, agentId, file, secrets } = await onboarded();
      const moved = path.join(outside, `${agentId}.json`);
      fs.renameSync(file, moved);
      fs.symlinkSync(moved, file);
      const before = filesUnder(outside);
      sandbox.resetCalls();

      const rotate = expectError(await send(flow, 'agent', { action: 'rotate' }), 'AGENT_STATE_ERROR', 'rotate');
      assert.match(rotate.message, /is a symbolic link/);
      assert.ok(rotate.message.includes(file), `names the record's path: ${rotate.message}`);
      // A new flow: no token cached in memory, so the token needs the record.
      const again = await reload(flow);
      const token = expectError(await send(again, 'token', {}), 'AGENT_STATE_ERROR', 'token');
      assert.match(token.message, /is a symbolic link/);

      assert.equal(
        sandbox.calls('agents.rotate') + sandbox.calls('agents.token') + sandbox.calls('agents.register'),
        0,
        'nothing sent with the credentials behind the link',
      );
      assert.deepEqual(filesUnder(outside), before, 'the file outside is untouched, and nothing new is written there');
      assert.equal(fs.readlinkSync(file), moved, 'the link is left as it was');
      assertNoLeaks(secrets, 'link at a record');
    });

    for (const dangling of [true, false]) {
      it(`a ${dangling ? 'dangling ' : ''}link at the record's path before onboarding: refused, the IAT not spent, nothing written through it`, async () => {
        const { flow, agentId, iat } = await loadAgent(sandbox);
        fs.mkdirSync(stateDir(), { recursive: true, mode: 0o700 });
        const target = path.join(outside, 'target.json');
        if (!dangling) fs.writeFileSync(target, '');
        const file = path.join(stateDir(), `${agentId}.json`);
        fs.symlinkSync(target, file);

        const error = expectError(await send(flow, 'agent', { action: 'onboard' }), 'AGENT_STATE_ERROR', 'onboard');
        assert.match(error.message, /is a symbolic link/);
        assert.ok(error.message.includes(file), error.message);
        assert.equal(sandbox.calls('agents.register'), 0, 'the IAT was not spent');
        assert.deepEqual(filesUnder(outside), dangling ? {} : { 'target.json': '' }, 'nothing written through the link');
        assert.equal(fs.lstatSync(file).isSymbolicLink(), true, 'the link is not replaced either');
        assertNoLeaks([iat], 'link before onboarding');
      });
    }
  });

  describe("a symbolic link at a lock's path", () => {
    for (const dangling of [true, false]) {
      it(`a ${dangling ? 'dangling ' : ''}link at <client id>.json.lock: refused, the target neither touched nor removed`, async () => {
        const { flow, agentId, iat } = await loadAgent(sandbox);
        fs.mkdirSync(stateDir(), { recursive: true, mode: 0o700 });
        const target = path.join(outside, 'lock-target');
        // An old folder: a lock that followed the link would take it for a stale lock, remove it, or refresh its time.
        const old = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000); // whole seconds: compared exactly below
        if (!dangling) {
          fs.mkdirSync(target);
          fs.utimesSync(target, old, old);
        }
        const lock = path.join(stateDir(), `${agentId}.json.lock`);
        fs.symlinkSync(target, lock);

        const error = expectError(await send(flow, 'agent', { action: 'onboard' }), 'AGENT_STATE_ERROR', 'onboard');
        assert.match(error.message, /the lock .* is a symbolic link/);
        assert.ok(error.message.includes(lock), error.message);
        assert.equal(sandbox.calls('agents.register'), 0, 'the IAT was not spent');
        assert.equal(fs.readlinkSync(lock), target, 'the link is left as it was');
        if (dangling) assert.equal(fs.existsSync(target), false, 'nothing made at the target');
        else assert.equal(fs.statSync(target).mtimeMs, old.getTime(), 'the target folder is neither removed nor refreshed');
        assert.equal(fs.existsSync(path.join(stateDir(), `${agentId}.json`)), false);
        assertNoLeaks([iat], 'link at a lock');
      });
    }
  });

  describe('a state folder others may write, or another user owns', () => {
    for (const mode of [0o777, 0o770, 0o757, 0o1777]) {
      const shown = `0${mode.toString(8)}`;
      it(`mode ${shown}: refused with its mode and what to do; nothing written there, the IAT not spent`, async () => {
        const dir = path.join(suite.root, `loose-${mode.toString(8)}`);
        fs.mkdirSync(dir);
        fs.chmodSync(dir, mode); // whatever the umask
        suite.settings.iiotAuth.agentStateDir = dir;
        const { flow, iat } = await loadAgent(sandbox);
        const error = expectError(await send(flow, 'agent', { action: 'onboard' }), 'AGENT_STATE_ERROR', shown);
        assert.ok(error.message.includes(`${dir} has mode ${shown}`), error.message);
        assert.match(error.message, /group or others may write it/);
        assert.ok(error.message.includes(`chmod 700 ${dir}`), error.message);
        assert.equal(sandbox.calls('agents.register'), 0, 'the IAT was not spent');
        assert.deepEqual(fs.readdirSync(dir), [], 'no record and no lock made there');
        assertNoLeaks([iat], shown);
      });
    }

    it('an onboarded agent whose folder is later opened to its group: token and rotate refused, the record kept', async () => {
      const { flow, file, secrets } = await onboarded();
      const kept = fs.readFileSync(file, 'utf8');
      fs.chmodSync(stateDir(), 0o775);
      sandbox.resetCalls();
      const again = await reload(flow);
      for (const [node, msg] of [
        ['token', {}],
        ['agent', { action: 'rotate' }],
      ] as const) {
        const error = expectError(await send(again, node, msg), 'AGENT_STATE_ERROR', node);
        assert.match(error.message, /has mode 0775/);
      }
      assert.equal(sandbox.calls('agents.rotate') + sandbox.calls('agents.token'), 0);
      assert.equal(fs.readFileSync(file, 'utf8'), kept);
      assertNoLeaks(secrets, 'folder opened later');
    });

    it('a folder another user owns: refused, naming the owner', async function () {
      if (process.getuid?.() !== 0) this.skip(); // only root can give a folder away
      const dir = path.join(suite.root, 'foreign');
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.chownSync(dir, 54321, 54321);
      suite.settings.iiotAuth.agentStateDir = dir;
      const { flow } = await loadAgent(sandbox);
      const error = expectError(await send(flow, 'agent', { action: 'onboard' }), 'AGENT_STATE_ERROR', 'foreign');
      assert.match(error.message, /belongs to the user with uid 54321, not to the user Node-RED runs as \(uid 0\)/);
      assert.equal(sandbox.calls('agents.register'), 0);
      assert.deepEqual(fs.readdirSync(dir), []);
    });

    it('a folder above it that anyone may write (no sticky bit): refused; with the sticky bit (as /tmp) it works', async () => {
      const open = path.join(suite.root, 'open');
      fs.mkdirSync(open);
      fs.chmodSync(open, 0o777);
      suite.settings.iiotAuth.agentStateDir = path.join(open, 'agents');
      const { flow } = await loadAgent(sandbox);
      const error = expectError(await send(flow, 'agent', { action: 'onboard' }), 'AGENT_STATE_ERROR', 'open parent');
      assert.ok(error.message.includes(`the folder ${open} above the state folder`), error.message);
      assert.match(error.message, /mode 0777: anyone may write it/);
      assert.equal(sandbox.calls('agents.register'), 0);
      await H.unload();

      fs.chmodSync(open, 0o1777);
      const { flow: sticky } = await loadAgent(sandbox);
      assert.equal((await send(sticky, 'agent', { action: 'onboard' })).kind, 'output');
    });

    it('a missing folder is made 0700 (and the folders above it that it makes); a 0700 folder works; records are 0600', async () => {
      suite.settings.iiotAuth.agentStateDir = path.join(suite.root, 'new', 'agents');
      const { agentId, file } = await onboarded();
      assert.equal(fs.statSync(stateDir()).mode & 0o7777, 0o700);
      assert.equal(fs.statSync(path.dirname(stateDir())).mode & 0o7777, 0o700);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(fs.readdirSync(stateDir()).sort(), [`${agentId}.json`, `${agentId}.json.lock`], 'no temporary file left');
    });
  });

  /** A new flow for the same agent (new node ids: no token cached in memory). */
  async function reload(flow: AgentFlow): Promise<AgentFlow> {
    await H.unload();
    const again = agentFlow(sandbox, flow.credentials[flow.ids.agentConfig]!.boardingConfig!);
    await H.load(ALL_MODULES, again.nodes, again.credentials);
    return again;
  }
});
