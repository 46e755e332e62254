import assert from 'node:assert/strict';
import type { NodeAPI, NodeMessage } from '../../src/nodes/node-red.js';
import { FlowHarness as H, uid, type FlowNode } from './flow.js';
import { countOutcomes, outcomeOf } from './outcome.js';
import { waitFor } from './wait.js';

/**
 * The waiting helpers every suite relies on must fail when they should: a
 * helper that cannot see a second ending makes every "exactly one ending"
 * test pass for nothing. A made-up node (its type starts with iiot- like
 * ours, so it is tracked) ends each message as msg.how says.
 */

const later = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function testNode(RED: NodeAPI): void {
  RED.nodes.registerType('iiot-test-endings', function (this: any, config: Record<string, unknown>) {
    RED.nodes.createNode(this, config as never);
    this.on('input', async (msg: NodeMessage, send: (m: NodeMessage) => void, done: (err?: Error) => void) => {
      await later(typeof msg.wait === 'number' ? msg.wait : 0);
      switch (msg.how) {
        case 'output':
          send(msg);
          return done();
        case 'error':
          return done(new Error('made to fail'));
        case 'output and error':
          send(msg);
          return done(new Error('made to fail as well'));
        case 'two outputs, the second late':
          send(msg);
          await later(100); // longer than any settle a test used to sleep
          send({ ...msg });
          return done();
        case 'never done':
          send(msg);
          return;
      }
    });
  } as never);
}

describe('test helpers: waiting for endings, not for time', () => {
  let ids: { node: string; out: string; errors: string };
  before(() => H.start());
  after(() => H.stop());
  beforeEach(async () => {
    ids = { node: uid('end'), out: uid('out'), errors: uid('err') };
    const flow: FlowNode[] = [
      { id: ids.node, type: 'iiot-test-endings', wires: [[ids.out]] },
      { id: ids.out, type: 'helper' },
      { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
      { id: ids.errors, type: 'helper' },
    ];
    await H.load([testNode], flow);
  });
  afterEach(() => H.unload());

  const send =
    (how: string, wait = 0) =>
    () =>
      H.node(ids.node).receive({ how, wait });

  it('outcomeOf returns the one output or the one error', async () => {
    assert.equal((await outcomeOf(ids, send('output'))).kind, 'output');
    const error = await outcomeOf(ids, send('error', 20));
    assert.equal(error.kind, 'error');
    assert.match(error.error!.message, /made to fail/);
  });

  it('outcomeOf fails on an output and an error for one message', async () => {
    await assert.rejects(outcomeOf(ids, send('output and error')), /exactly one output or error, got output, error/);
  });

  it('outcomeOf fails on a second output however late it comes before done', async () => {
    await assert.rejects(outcomeOf(ids, send('two outputs, the second late')), /exactly one output or error, got output, output/);
  });

  it('outcomeOf fails when the node never says done, even though it sent', async () => {
    await assert.rejects(outcomeOf(ids, send('never done'), 300), /timed out after 300 ms waiting for 1 of 1 messages to end/);
  });

  it('countOutcomes returns once every message sent has ended, the slowest included', async () => {
    const { outputs, errors } = await countOutcomes(ids, async () => {
      for (const wait of [120, 0, 60]) H.node(ids.node).receive({ how: 'output', wait });
      H.node(ids.node).receive({ how: 'error', wait: 150 });
    });
    assert.equal(outputs.length, 3);
    assert.equal(errors.length, 1);
  });

  it('waitFor resolves with the first truthy value and says what it waited for on timeout', async () => {
    let asked = 0;
    assert.equal(await waitFor(() => (++asked >= 3 ? 'ready' : undefined), { what: 'three questions' }), 'ready');
    await assert.rejects(
      waitFor(() => false, { timeoutMs: 50, what: () => 'something that never comes' }),
      /timed out after 50 ms waiting for something that never comes/,
    );
  });
});
