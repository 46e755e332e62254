import { importAgentKey } from '../platforms/insights-hub-agent/protocol.js';
import { adoptionSecrets, parseAgentConfiguration } from '../platforms/insights-hub-agent/adoption.js';
import { AgentLifecycle } from '../platforms/insights-hub-agent/lifecycle.js';
import { INSIGHTS_HUB_AGENT } from '../platforms/insights-hub-agent/declaration.js';
import { boardingConfigId, secretDigest, type SecurityProfile } from '../platforms/insights-hub-agent/state.js';
import { agentMutex, agentStores } from './agent-store.js';
import { registerPlatformConfigNode, textProperty, type PlatformConfigNode } from './config-node.js';
import { registerAgentCheckRoute } from './insights-hub-agent-check.js';
import type { NodeAPI } from './node-red.js';
import { settingsOf } from './runtime.js';

/**
 * Config node: an Insights Hub agent. Holds the boarding configuration (with
 * its IAT), or the state file of Siemens' SDK whose registration is adopted,
 * and, for RSA_3072, an optional private key (the SDK's, when adopting); the
 * credentials that onboarding or adoption produces live in the agent store (a
 * state file, or Redis), never in the flows.
 */
export interface AgentConfigNode extends PlatformConfigNode {
  agent?: AgentLifecycle;
  /** The optional Insights Hub app config node, for the app-side calls. */
  appConfigId?: string;
}

export default function register(RED: NodeAPI): void {
  // The config dialog's check of pasted text, by the parsers below.
  registerAgentCheckRoute(RED);
  registerPlatformConfigNode(RED, INSIGHTS_HUB_AGENT, (definition, credentials, node) => {
    const profile: SecurityProfile = definition.profile === 'RSA_3072' ? 'RSA_3072' : 'SHARED_SECRET';
    const userKey = profile === 'RSA_3072' && credentials.privateKey?.trim() ? importAgentKey(credentials.privateKey) : undefined;
    const { boarding, adoption } = parseAgentConfiguration(credentials.boardingConfig ?? '', profile, userKey);
    const stores = agentStores(RED);
    const agent = new AgentLifecycle({
      store: stores.store,
      ...(stores.importFrom ? { importFrom: stores.importFrom } : {}),
      onClose: stores.release,
      mutex: agentMutex,
      boarding,
      profile,
      rotation: INSIGHTS_HUB_AGENT.rotation,
      ...(userKey ? { userKey } : {}),
      ...(adoption ? { adoption } : {}),
      ...(settingsOf(RED).agentLockStaleMs !== undefined ? { lockStaleMs: settingsOf(RED).agentLockStaleMs } : {}),
    });
    const agentNode = node as AgentConfigNode;
    agentNode.agent = agent;
    agentNode.agentHealth = agent;
    const app = textProperty(definition, 'app');
    if (app) agentNode.appConfigId = app;
    return {
      provider: agent,
      fingerprintParts: {
        clientId: boarding.clientId,
        boarding: boardingConfigId(boarding.iat),
        profile,
        key: userKey ? secretDigest(userKey.privateKey) : '',
        adopted: adoption ? secretDigest(adoption.registrations[0].registrationAccessToken) : '',
      },
      secrets: [boarding.iat, credentials.privateKey, userKey?.privateKey, ...adoptionSecrets(adoption)],
    };
  });
}
