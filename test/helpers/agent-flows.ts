import type { NodeRedProcess } from './node-red-process.js';
import { waitFor } from './wait.js';

/**
 * The flow the multi-process agent tests deploy: GET /agent?action=… runs an
 * agent node with that action; the answer is {ok, kept} (the registrations
 * kept) or {ok: false, code, message}.
 */
export function agentFlows(boardingConfig: string): Record<string, unknown>[] {
  return [
    { id: 'tab1', type: 'tab', label: 'agent' },
    { id: 'agc1', type: 'iiot-insights-hub-agent', profile: 'SHARED_SECRET', app: '', credentials: { boardingConfig } },
    { id: 'in1', type: 'http in', z: 'tab1', url: '/agent', method: 'get', wires: [['act1']] },
    { id: 'act1', type: 'change', z: 'tab1', rules: [{ t: 'set', p: 'action', pt: 'msg', to: 'req.query.action', tot: 'msg' }], wires: [['ag1']] },
    { id: 'ag1', type: 'iiot-agent', z: 'tab1', insightsHubAgent: 'agc1', action: 'msg', wires: [['ok1']] },
    {
      id: 'ok1',
      type: 'change',
      z: 'tab1',
      rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"ok": true, "kept": payload.registrationsKept}', tot: 'jsonata' }],
      wires: [['res1']],
    },
    { id: 'catch1', type: 'catch', z: 'tab1', scope: ['ag1'], uncaught: false, wires: [['err1']] },
    {
      id: 'err1',
      type: 'change',
      z: 'tab1',
      rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"ok": false, "code": error.code, "message": error.message}', tot: 'jsonata' }],
      wires: [['res1']],
    },
    { id: 'res1', type: 'http response', z: 'tab1', statusCode: '', wires: [] },
  ];
}

/** Deploys the agent flow and waits until it answers (a deploy returns before the flows have started). */
export async function deployAgentFlow(red: NodeRedProcess, boardingConfig: string): Promise<void> {
  await red.deploy(agentFlows(boardingConfig));
  const answers = async () => (await fetch(`${red.base}/agent?action=status`)).headers.get('content-type')?.includes('json');
  await waitFor(answers, { timeoutMs: 10_000, intervalMs: 100, what: () => `the flow to start:\n${red.output}` });
}

export interface AgentAnswer {
  ok: boolean;
  kept?: number;
  code?: string;
  message?: string;
}

export async function callAgent(red: NodeRedProcess, action: string): Promise<AgentAnswer> {
  const res = await fetch(`${red.base}/agent?action=${action}`);
  return (await res.json()) as AgentAnswer;
}
