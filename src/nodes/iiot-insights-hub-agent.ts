import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { importAgentKey, parseBoardingConfiguration } from '../platforms/insights-hub-agent.js';
import { AgentLifecycle } from '../platforms/insights-hub-agent-lifecycle.js';
import { INSIGHTS_HUB_AGENT } from '../platforms/insights-hub-agent-declaration.js';
import { boardingConfigId, type SecurityProfile } from '../platforms/insights-hub-agent-state.js';
import { agentMutex, agentStores } from './agent-store.js';
import { registerPlatformConfigNode, textProperty, type PlatformConfigNode } from './config-node.js';
import type { NodeAPI } from './node-red.js';
import { settingsOf } from './runtime.js';

/**
 * Config node: an Insights Hub agent. Holds the boarding configuration (with
 * its IAT) and, for RSA_3072, an optional private key; the credentials that
 * onboarding produces live in the agent store (a state file, or Redis), never
 * in the flows.
 */
export interface AgentConfigNode extends PlatformConfigNode {
  agent?: AgentLifecycle;
  /** The optional Insights Hub app config node, for the app-side calls. */
  appConfigId?: string;
}

export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(
    RED,
    INSIGHTS_HUB_AGENT,
    (definition, credentials, node) => {
      const boarding = parseBoardingConfiguration(credentials.boardingConfig ?? '');
      const profile: SecurityProfile = definition.profile === 'RSA_3072' ? 'RSA_3072' : 'SHARED_SECRET';
      if (boarding.profiles.length > 0 && !boarding.profiles.includes(profile)) {
        throw new IiotAuthError(
          ErrorCode.CONFIG_INVALID,
          `the boarding configuration is for ${boarding.profiles.join(', ')}, but the node is set to ${profile}: choose the agent's security profile`,
        );
      }
      const userKey = profile === 'RSA_3072' && credentials.privateKey?.trim() ? importAgentKey(credentials.privateKey) : undefined;
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
        ...(settingsOf(RED).agentLockStaleMs !== undefined ? { lockStaleMs: settingsOf(RED).agentLockStaleMs } : {}),
      });
      const agentNode = node as AgentConfigNode;
      agentNode.agent = agent;
      const app = textProperty(definition, 'app');
      if (app) agentNode.appConfigId = app;
      return {
        provider: agent,
        fingerprintParts: { clientId: boarding.clientId, boarding: boardingConfigId(boarding.iat), profile, key: userKey ? boardingConfigId(userKey.privateKey) : '' },
        secrets: [boarding.iat, credentials.privateKey, userKey?.privateKey],
      };
    },
  );
}
