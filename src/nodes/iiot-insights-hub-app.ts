import {
  InsightsHubAppProvider,
  settingsFromEnvironment,
  validateSettings,
  type InsightsHubAppSettings,
} from '../platforms/insights-hub-app.js';
import { registerPlatformConfigNode, textProperty } from './config-node.js';
import type { NodeAPI } from './node-red.js';

/** Config node: Insights Hub app credentials (Technical Token Manager). */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(
    RED,
    'iiot-insights-hub-app',
    { clientId: { type: 'text' }, clientSecret: { type: 'password' } },
    (definition, credentials) => {
      const useEnv = definition.useEnv === true || definition.useEnv === 'true';
      const text = (key: string) => textProperty(definition, key);
      const raw: InsightsHubAppSettings = useEnv
        ? settingsFromEnvironment(process.env, text('gateway'))
        : {
            gateway: text('gateway'),
            appName: text('appName'),
            appVersion: text('appVersion'),
            hostTenant: text('hostTenant'),
            userTenant: text('userTenant'),
            clientId: (credentials.clientId ?? '').trim(),
            clientSecret: credentials.clientSecret ?? '',
          };
      const settings = validateSettings(raw, useEnv);
      return {
        provider: new InsightsHubAppProvider(settings),
        fingerprintParts: { ...settings },
        secrets: [settings.clientSecret],
        basicPairs: [[settings.clientId, settings.clientSecret]],
      };
    },
  );
}
