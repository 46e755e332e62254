import { ErrorCode, IiotAuthError, isIiotAuthError } from '../core/errors.js';
import { checkBaseUrl } from '../core/url.js';
import { CISCO_EI, lookUpTenants, validateSettings } from '../platforms/cisco-ei.js';
import { acceptsJsonOnly } from './admin-route.js';
import { registerPlatformConfigNode, textProperty } from './config-node.js';
import type { AdminRequest, AdminResponse, NodeAPI, NodeDefinition } from './node-red.js';
import { runtimeOf } from './runtime.js';

/** What the editor sends for a password field it has not changed. */
const UNCHANGED_PASSWORD = '__PWRD__';

/** Where a deployed config node's stored password may go: its own server, as its own user, over its own TLS and proxy settings. */
interface SavedIdentity {
  server: string;
  username: string;
  tls: string;
  proxy: string;
}

/** Config node: Cisco EI API user and tenant. */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(RED, CISCO_EI);

  // "Look up tenants" in the config dialog: logs in and lists the user's
  // tenants. Only editor users who may change flows may call it (with
  // adminAuth), it takes JSON only (a plain HTML form from another web page
  // cannot send that), and a stored password goes only to its config node's
  // own server, as its own user.
  RED.httpAdmin.post('/iiot-auth/cisco-ei/tenants', RED.auth.needsPermission('iiot-cisco-ei.write'), (req: AdminRequest, res: AdminResponse) => {
    if (!acceptsJsonOnly(req, res, 'the tenant look-up')) return;
    void lookUp(RED, req.body ?? {}).then(
      (tenants) => res.json({ tenants }),
      (err: unknown) => {
        const message = isIiotAuthError(err) ? err.message : 'the tenant look-up failed';
        const invalid =
          isIiotAuthError(err) && (err.code === ErrorCode.CONFIG_INVALID || err.code === ErrorCode.INPUT_INVALID || err.code === ErrorCode.CREDENTIALS_MISSING);
        res.status(invalid ? 400 : 502).json({ code: isIiotAuthError(err) ? err.code : ErrorCode.INTERNAL_ERROR, message });
      },
    );
  });
}

async function lookUp(RED: NodeAPI, body: Record<string, unknown>) {
  const text = (key: string) => (typeof body[key] === 'string' ? (body[key] as string) : '');
  let password = text('password');
  if (password === UNCHANGED_PASSWORD || password === '') password = storedPassword(RED, text);
  const settings = validateSettings({ server: text('server'), tenantId: '', username: text('username'), password }, false);
  const http = runtimeOf(RED).httpClient(RED, { id: '', type: 'iiot-cisco-ei', tls: text('tls'), proxy: text('proxy') });
  try {
    return await lookUpTenants(http, settings);
  } finally {
    await http.close();
  }
}

/** The config node's stored password, when the look-up is for exactly what it was deployed with; '' when there is none to use. */
function storedPassword(RED: NodeAPI, text: (key: string) => string): string {
  const id = text('id');
  if (!id) return '';
  const stored = (RED.nodes.getCredentials?.(id) as { username?: string; password?: string } | undefined) ?? {};
  if (!stored.password) return '';
  const saved = deployedIdentity(RED, id, stored.username ?? '');
  if (!saved) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      'this config node is not deployed with its stored password: deploy it first, or type the password to look up tenants',
    );
  }
  const asked: SavedIdentity = {
    server: normalisedServer(text('server')),
    username: text('username').trim(),
    tls: text('tls').trim(),
    proxy: text('proxy').trim(),
  };
  if (asked.server !== saved.server || asked.username !== saved.username || asked.tls !== saved.tls || asked.proxy !== saved.proxy) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      'the stored password is used only with the saved server, username, TLS and proxy settings: type the password to look up tenants with other ones',
    );
  }
  return stored.password;
}

/**
 * What the deployed config node was saved with, read from the deployed flows
 * rather than the running node: a deploy answers before every node has
 * started, and the dialog may ask at once.
 */
function deployedIdentity(RED: NodeAPI, id: string, username: string): SavedIdentity | undefined {
  let definition: NodeDefinition | undefined;
  RED.nodes.eachNode?.((candidate) => {
    if (candidate.id === id && candidate.type === 'iiot-cisco-ei') definition = candidate;
  });
  if (!definition) return undefined;
  return {
    server: normalisedServer(textProperty(definition, 'server')),
    username: username.trim(),
    tls: textProperty(definition, 'tls'),
    proxy: textProperty(definition, 'proxy'),
  };
}

function normalisedServer(value: string): string {
  try {
    return checkBaseUrl(value, 'the server URL');
  } catch {
    return value.trim();
  }
}
