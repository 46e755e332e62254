import { DataTrailsProvider, validateSettings } from '../platforms/datatrails.js';
import { registerPlatformConfigNode, textProperty } from './config-node.js';
import type { NodeAPI } from './node-red.js';

/** Config node: DataTrails client credentials (a custom integration). */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(
    RED,
    'iiot-datatrails',
    { clientId: { type: 'text' }, clientSecret: { type: 'password' } },
    (definition, credentials) => {
      const settings = validateSettings({
        url: textProperty(definition, 'url'),
        clientId: credentials.clientId ?? '',
        clientSecret: credentials.clientSecret ?? '',
      });
      return {
        provider: new DataTrailsProvider(settings),
        fingerprintParts: { ...settings },
        secrets: [settings.clientSecret],
      };
    },
  );
}
