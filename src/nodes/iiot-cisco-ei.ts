import { isIiotAuthError } from '../core/errors.js';
import { CiscoEiProvider, lookUpTenants, validateSettings } from '../platforms/cisco-ei.js';
import { registerPlatformConfigNode, textProperty } from './config-node.js';
import type { AdminRequest, AdminResponse, NodeAPI } from './node-red.js';
import { httpClientFor } from './runtime.js';

/** What the editor sends for a password field it has not changed. */
const UNCHANGED_PASSWORD = '__PWRD__';

/** Config node: Cisco EI API user and tenant. */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(
    RED,
    'iiot-cisco-ei',
    { username: { type: 'text' }, password: { type: 'password' } },
    (definition, credentials) => {
      const settings = validateSettings({
        server: textProperty(definition, 'server'),
        tenantId: textProperty(definition, 'tenantId'),
        username: credentials.username ?? '',
        password: credentials.password ?? '',
      });
      return {
        provider: new CiscoEiProvider(settings),
        fingerprintParts: { ...settings },
        secrets: [settings.password],
      };
    },
  );

  // "Look up tenants" in the config dialog: logs in with what the dialog holds
  // and lists the user's tenants. Only editor users who may change flows may
  // call it: it sends stored credentials to a server the caller names.
  RED.httpAdmin.post('/iiot-auth/cisco-ei/tenants', RED.auth.needsPermission('iiot-cisco-ei.write'), (req: AdminRequest, res: AdminResponse) => {
    void lookUp(RED, req.body ?? {}).then(
      (tenants) => res.json({ tenants }),
      (err: unknown) => {
        const message = isIiotAuthError(err) ? err.message : 'the tenant look-up failed';
        res.status(isIiotAuthError(err) && (err.code === 'CONFIG_INVALID' || err.code === 'CREDENTIALS_MISSING') ? 400 : 502).json({ code: isIiotAuthError(err) ? err.code : 'ERROR', message });
      },
    );
  });
}

async function lookUp(RED: NodeAPI, body: Record<string, unknown>) {
  const text = (key: string) => (typeof body[key] === 'string' ? (body[key] as string) : '');
  let password = text('password');
  if ((password === UNCHANGED_PASSWORD || password === '') && text('id')) {
    const stored = RED.nodes.getCredentials?.(text('id')) as { password?: string } | undefined;
    password = stored?.password ?? '';
  }
  const settings = validateSettings({ server: text('server'), tenantId: '', username: text('username'), password }, false);
  const http = httpClientFor(RED, { id: '', type: 'iiot-cisco-ei', tls: text('tls'), proxy: text('proxy') });
  try {
    return await lookUpTenants(http, settings);
  } finally {
    await http.close();
  }
}
