import { MbpProvider, validateSettings } from '../platforms/mbp.js';
import { registerPlatformConfigNode, textProperty } from './config-node.js';
import type { NodeAPI } from './node-red.js';

/** Config node: an MBP user (session cookie and access-request header). */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(
    RED,
    'iiot-mbp',
    { username: { type: 'text' }, password: { type: 'password' } },
    (definition, credentials) => {
      const settings = validateSettings({
        url: textProperty(definition, 'url'),
        username: credentials.username ?? '',
        password: credentials.password ?? '',
      });
      return {
        provider: new MbpProvider(settings),
        fingerprintParts: { ...settings },
        secrets: [settings.password],
      };
    },
  );
}
