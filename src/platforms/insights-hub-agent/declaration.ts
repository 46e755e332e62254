import { declarePlatform } from '../declaration.js';
import { AGENT_ERROR_CODES } from './errors.js';

/**
 * When an agent rotates its key, as fractions of the secret's lifetime:
 * rotation starts when `marginMin` to `marginMin + marginSpread` of it is
 * left, the point drawn once per agent so that agents onboarded together
 * spread out.
 */
export interface RotationPolicy {
  marginMin: number;
  marginSpread: number;
}

export const DEFAULT_ROTATION: Readonly<RotationPolicy> = Object.freeze({ marginMin: 0.25, marginSpread: 0.1 });

/**
 * The Insights Hub agent (Agent Management). Its provider, the agent life
 * cycle, needs the runtime's agent store: the config node builds it
 * (src/nodes/iiot-insights-hub-agent.ts), so there is no `configure` here.
 */
export const INSIGHTS_HUB_AGENT = {
  ...declarePlatform({
    id: 'insights-hub-agent',
    label: 'Insights Hub agent',
    configType: 'iiot-insights-hub-agent',
    property: 'insightsHubAgent',
    fields: ['profile', 'app'],
    credentials: { boardingConfig: { type: 'password' }, privateKey: { type: 'password' } },
    headers: ['authorization'],
    errorCodes: AGENT_ERROR_CODES,
  }),
  rotation: DEFAULT_ROTATION,
};
