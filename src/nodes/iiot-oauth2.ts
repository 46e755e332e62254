import { ErrorCode, isIiotAuthError } from '../core/errors.js';
import { KeyedMutex } from '../core/record-store.js';
import { authorizationUrl, OAuth2LoginClient, PendingLogins, refreshTokenProvider } from '../platforms/oauth2-login.js';
import { OAUTH2, oauth2Client, oauth2Provider, setupParts } from '../platforms/oauth2.js';
import { acceptsJsonOnly } from './admin-route.js';
import { type PlatformConfigNode, registerPlatformConfigNode, textProperty } from './config-node.js';
import type { AdminRequest, AdminResponse, NodeAPI } from './node-red.js';
import { oauth2Store } from './oauth2-store.js';

/** The config node with the authorization code grant: its login. */
interface OAuth2ConfigNode extends PlatformConfigNode {
  oauth2Login?: OAuth2LoginClient;
}

export const CALLBACK_PATH = 'iiot-auth/oauth2/callback';

/** One per process: a login and a refresh of one config node never run at once. */
const loginMutex = new KeyedMutex();

/**
 * Config node: any OAuth 2.0 API. With the client credentials grant it is
 * what the declaration builds; with the authorization code grant, tokens come
 * from a refresh token that a user's login in the editor stored
 * (../platforms/oauth2-login.ts), and four admin routes run the login:
 *
 * - POST iiot-auth/oauth2/<id>/login (write permission, JSON only) starts it:
 *   state and PKCE verifier made and kept here, the provider's URL answered;
 * - GET iiot-auth/oauth2/callback: where the provider sends the browser back.
 *   A top-level navigation carries no admin token, so permission is the
 *   state's: only the POST above makes one, it is 256 random bits, one use,
 *   ten minutes (docs/security.md);
 * - GET iiot-auth/oauth2/<id>/login (read permission): logged in or not, as whom;
 * - POST iiot-auth/oauth2/<id>/logout (write permission, JSON only): the
 *   refresh token revoked at the provider (RFC 7009) and cleared here.
 */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(RED, OAUTH2, (definition, credentials, node) => {
    const input = {
      text: (key: string) => textProperty(definition, key),
      flag: (key: string) => definition[key] === true || definition[key] === 'true',
      credentials,
      env: process.env,
    };
    const { settings, client } = oauth2Client(input);
    if (settings.grant !== 'authorization_code') return { provider: oauth2Provider(settings, client), ...setupParts(settings) };
    const { store, release } = oauth2Store(RED);
    const login = new OAuth2LoginClient(node.id, settings, client, store, loginMutex);
    (node as OAuth2ConfigNode).oauth2Login = login;
    node.on('close', (removed: boolean, done: () => void) => {
      // A deleted config node takes its refresh token along; a redeployed one keeps its login.
      const forgotten = removed ? login.forget() : Promise.resolve();
      forgotten.then(release).then(done, done);
    });
    return { provider: refreshTokenProvider(login), ...setupParts(settings) };
  });

  const pending = new PendingLogins();
  const loginOf = (id: string | undefined): OAuth2ConfigNode | undefined => {
    const node = id ? (RED.nodes.getNode(id) as OAuth2ConfigNode | null) : undefined;
    return node && node.type === OAUTH2.configType ? node : undefined;
  };
  const refuse = (res: AdminResponse, status: number, code: string, message: string) => res.status(status).json({ code, message });

  RED.httpAdmin.post('/iiot-auth/oauth2/:id/login', RED.auth.needsPermission('iiot-oauth2.write'), (req: AdminRequest, res: AdminResponse) => {
    if (!acceptsJsonOnly(req, res, 'the OAuth 2.0 login')) return;
    const node = loginOf(req.params?.id);
    if (!node) return refuse(res, 404, ErrorCode.NOT_FOUND, 'no deployed OAuth 2.0 config node has this id: deploy it first, then log in');
    if (node.configError) return refuse(res, 400, node.configError.code, node.configError.message);
    const login = node.oauth2Login;
    if (!login || !node.connection) {
      return refuse(res, 400, ErrorCode.CONFIG_INVALID, 'this config node uses the client credentials grant: choose "authorization code", deploy, then log in');
    }
    const redirectUri = callbackUrl(RED, req);
    if (!redirectUri) {
      return refuse(res, 400, ErrorCode.INPUT_INVALID, `callbackUrl must be an http(s) URL ending in /${CALLBACK_PATH}, without query or fragment`);
    }
    void login.authorizationEndpoint(node.connection.http).then(
      (endpoint) => {
        const { state, challenge } = pending.start(node.id, redirectUri, req.user?.username ?? '');
        res.json({ authorizationUrl: authorizationUrl(endpoint, login.settings, redirectUri, state, challenge), redirectUri });
      },
      (err: unknown) => refuse(res, 502, isIiotAuthError(err) ? err.code : ErrorCode.INTERNAL_ERROR, node.connection?.redact(messageOf(err)) ?? messageOf(err)),
    );
  });

  RED.httpAdmin.post('/iiot-auth/oauth2/:id/logout', RED.auth.needsPermission('iiot-oauth2.write'), (req: AdminRequest, res: AdminResponse) => {
    if (!acceptsJsonOnly(req, res, 'the OAuth 2.0 log-out')) return;
    const node = loginOf(req.params?.id);
    if (!node?.oauth2Login || !node.connection) {
      return refuse(res, 404, ErrorCode.NOT_FOUND, 'no deployed OAuth 2.0 config node with the authorization code grant has this id: deploy it first');
    }
    const { connection } = node;
    void node.oauth2Login.logout(connection.http).then(
      (outcome) => {
        // The logged-out user's access token is not used for another message either.
        connection.credential.drop();
        res.json({ loggedIn: false, ...outcome });
      },
      (err: unknown) => refuse(res, 500, isIiotAuthError(err) ? err.code : ErrorCode.INTERNAL_ERROR, connection.redact(messageOf(err))),
    );
  });

  RED.httpAdmin.get('/iiot-auth/oauth2/:id/login', RED.auth.needsPermission('iiot-oauth2.read'), (req: AdminRequest, res: AdminResponse) => {
    const node = loginOf(req.params?.id);
    if (!node) return refuse(res, 404, ErrorCode.NOT_FOUND, 'no deployed OAuth 2.0 config node has this id: deploy it first');
    if (!node.oauth2Login) return void res.json({ loggedIn: false, grant: 'client_credentials' });
    void node.oauth2Login.status().then(
      (status) => res.json({ ...status, grant: 'authorization_code' }),
      (err: unknown) => refuse(res, 500, isIiotAuthError(err) ? err.code : ErrorCode.INTERNAL_ERROR, node.connection?.redact(messageOf(err)) ?? messageOf(err)),
    );
  });

  // No permission check of Node-RED's: the browser arrives from the provider without the editor's token. The state is the permission.
  RED.httpAdmin.get(`/${CALLBACK_PATH}`, (req: AdminRequest, res: AdminResponse) => {
    const query = req.query ?? {};
    const text = (key: string) => (typeof query[key] === 'string' ? (query[key] as string) : '');
    const login = pending.take(text('state'));
    if (!login) {
      return page(res, 400, undefined, {
        ok: false,
        message:
          'this login was not started from the config dialog, has expired (10 minutes) or was finished already: nothing was stored; start it again with "Log in"',
      });
    }
    const origin = new URL(login.redirectUri).origin;
    if (text('error')) {
      return page(res, 400, origin, { ok: false, error: text('error').slice(0, 200), errorDescription: text('error_description').slice(0, 1000) });
    }
    const node = loginOf(login.configId);
    if (!node?.oauth2Login || !node.connection) {
      return page(res, 400, origin, { ok: false, message: 'the config node was redeployed or removed during the login: nothing was stored; log in again' });
    }
    if (!text('code')) return page(res, 400, origin, { ok: false, message: 'the provider sent no code: nothing was stored; log in again' });
    const { connection } = node;
    void node.oauth2Login.finishLogin(connection.http, text('code'), login).then(
      (session) => {
        // A new login: the next message uses it at once, with no back-off from "not logged in" and no token of an earlier login.
        connection.credential.drop();
        page(res, 200, origin, { ok: true, sub: session.sub, name: session.name, scope: session.scope });
      },
      (err: unknown) => page(res, 400, origin, { ok: false, message: node.connection?.redact(messageOf(err)) ?? messageOf(err) }),
    );
  });
}

function messageOf(err: unknown): string {
  // Never a library's raw message: it may quote a credential.
  return isIiotAuthError(err) ? err.message : 'the login failed unexpectedly: try again; if it persists, report it';
}

/** The redirect URI: the editor's, as it sent it, or from the request's own address. Undefined when it is not the callback route. */
function callbackUrl(RED: NodeAPI, req: AdminRequest): string | undefined {
  const sent = req.body?.callbackUrl;
  if (typeof sent === 'string') {
    try {
      const url = new URL(sent);
      const ok =
        (url.protocol === 'https:' || url.protocol === 'http:') && !url.search && !url.hash && !url.username && url.pathname.endsWith(`/${CALLBACK_PATH}`);
      return ok ? url.href : undefined;
    } catch {
      return undefined;
    }
  }
  const host = req.headers?.host;
  if (typeof host !== 'string' || !host) return undefined;
  const root = typeof RED.settings.httpAdminRoot === 'string' ? RED.settings.httpAdminRoot : '/';
  return `${req.protocol === 'https' ? 'https' : 'http'}://${host}${root.endsWith('/') ? root : `${root}/`}${CALLBACK_PATH}`;
}

const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The page the login popup ends on: it tells the editor (postMessage to the
 * editor's origin only) and closes; shown as text when there is no opener.
 */
function page(res: AdminResponse, status: number, origin: string | undefined, result: Record<string, unknown>): void {
  const said = result.ok
    ? `Logged in${result.name || result.sub ? ` as ${String(result.name ?? result.sub)}` : ''}. This window closes itself.`
    : result.error
      ? `The provider refused the login: ${String(result.error)}${result.errorDescription ? ` (${String(result.errorDescription)})` : ''}`
      : String(result.message);
  // JSON inside a script: "<" escaped so no value can end the script element.
  const data = JSON.stringify({ type: 'iiot-oauth2-login', ...result }).replace(/</g, '\\u003c');
  const script = origin
    ? `<script>try{if(window.opener){window.opener.postMessage(${data},${JSON.stringify(origin)});${result.ok ? 'window.close();' : ''}}}catch(e){}</script>`
    : '';
  res.status(status);
  res.set('content-type', 'text/html; charset=utf-8');
  res.set('cache-control', 'no-store');
  res.set('referrer-policy', 'no-referrer');
  res.send(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>OAuth 2.0 login</title></head><body><p>${escapeHtml(said)}</p>${script}</body></html>`);
}
