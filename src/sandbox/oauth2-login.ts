// The OAuth 2.0 server's login: the authorization code grant (RFC 6749 4.1)
// with PKCE (RFC 7636, S256 required) and the refresh token grant (RFC 6749
// 6), refresh tokens rotated at every use. The consent page logs in the one
// demo user without a password and asks "Allow" or "Deny". The demo client
// has every loopback http redirect URI registered (RFC 8252 7.3: any port and
// path on this machine), so a Node-RED on any port can log in. Errors before
// the redirect URI is known are a page; after, a redirect (RFC 6749 4.1.2.1).

import { createHash, randomBytes } from 'node:crypto';
import { escapeHtml, htmlReply, mediaType, type Reply, type SandboxContext, type SandboxRequest } from './http-kit.js';

/** The scopes a login may ask for: the API's, and OpenID Connect's for an ID token. */
export const LOGIN_SCOPES = ['read', 'write', 'openid', 'offline_access'];
/** How long the consent page waits for its click. */
const CONSENT_TTL_MS = 10 * 60 * 1000;
/** RFC 7636 4.1 and 4.2: 43 to 128 unreserved characters (an S256 challenge is 43). */
const PKCE_VALUE = /^[A-Za-z0-9\-._~]{43,128}$/;

interface Authorization {
  clientId: string;
  redirectUri: string;
  scope: string[];
  state: string | null;
  challenge: string;
}

interface Code extends Authorization {
  expiresAt: number;
  used: boolean;
  /** Every refresh token of one login shares it: a replayed code revokes them all (RFC 6749 4.1.2). */
  grantId: string;
}

/** A login's refresh token: whose, and what was granted. */
export interface Grant {
  clientId: string;
  scope: string[];
  grantId: string;
}

/** What the token endpoint answers for a grant, or an OAuth 2.0 error (RFC 6749 5.2). */
export type GrantOutcome = { ok: true; grant: Grant; refreshToken: string } | { ok: false; error: string; description: string };
/** The token request's other parameters (scope, audience) against the grant: a refusal, checked before a code or refresh token is spent. */
export type GrantCheck = (grant: Grant) => { error: string; description: string } | undefined;

const random = () => randomBytes(32).toString('base64url');
const refuse = (error: string, description: string): GrantOutcome => ({ ok: false, error, description });

/** A redirect URI of the demo client: http on a loopback address, any port and path, no fragment or user (RFC 8252 7.3, 8.3). */
export function isLoopbackRedirect(value: string | null): value is string {
  if (!value) return false;
  try {
    const url = new URL(value);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const loopback = host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
    return url.protocol === 'http:' && loopback && !url.hash && !value.includes('#') && !url.username && !url.password;
  } catch {
    return false;
  }
}

export function createLogin(context: SandboxContext) {
  const demo = context.demo.oauth2;
  const consents = new Map<string, Authorization & { expiresAt: number }>();
  const codes = new Map<string, Code>();
  const refreshTokens = new Map<string, Grant>();

  function sweep(): void {
    const now = Date.now();
    for (const [id, consent] of consents) if (consent.expiresAt <= now) consents.delete(id);
    for (const [code, entry] of codes) if (entry.expiresAt <= now) codes.delete(code);
  }

  /** The browser back at the client with an error, as RFC 6749 4.1.2.1 has it. */
  function redirectError(to: Authorization | { redirectUri: string; state: string | null }, error: string, description: string): Reply {
    return back(to.redirectUri, { error, error_description: description, ...(to.state !== null ? { state: to.state } : {}) });
  }

  /** GET /oauth2/authorize: checks the request, then shows the consent page. */
  function authorize(request: SandboxRequest): Reply {
    const query = request.query;
    const clientId = query.get('client_id');
    const redirectUri = query.get('redirect_uri');
    // Without a known client and its redirect URI there is nowhere safe to send the browser: a page says why.
    if (clientId !== demo.clientId) return errorPage(400, `unknown client_id "${clientId ?? ''}": the sandbox's client is ${demo.clientId}`);
    if (!isLoopbackRedirect(redirectUri)) {
      return errorPage(400, `redirect_uri "${redirectUri ?? ''}" is not registered: the demo client takes http on 127.0.0.1, [::1] or localhost`);
    }
    const state = query.get('state');
    const to = { redirectUri, state };
    const repeated = [...new Set(query.keys())].filter((name) => query.getAll(name).length > 1);
    if (repeated.length > 0) return redirectError(to, 'invalid_request', `parameters sent more than once: ${repeated.join(', ')}`);
    if (query.get('response_type') !== 'code') return redirectError(to, 'unsupported_response_type', 'response_type must be code');
    const challenge = query.get('code_challenge') ?? '';
    if (query.get('code_challenge_method') !== 'S256' || !PKCE_VALUE.test(challenge)) {
      return redirectError(to, 'invalid_request', 'PKCE is required: send code_challenge with code_challenge_method S256');
    }
    const scope = (query.get('scope') ?? '').split(' ').filter(Boolean);
    const unknown = scope.filter((s) => !LOGIN_SCOPES.includes(s));
    if (unknown.length > 0) return redirectError(to, 'invalid_scope', `unknown scope: ${unknown.join(' ')}`);
    sweep();
    const consent = random();
    consents.set(consent, { clientId, redirectUri, scope, state, challenge, expiresAt: Date.now() + CONSENT_TTL_MS });
    return consentPage(consent, demo.user, clientId, scope, redirectUri);
  }

  /** POST /oauth2/authorize: the user's click; a code on "Allow", access_denied on "Deny". */
  function decide(request: SandboxRequest): Reply {
    if (mediaType(request) !== 'application/x-www-form-urlencoded') return errorPage(400, 'the consent form is sent as application/x-www-form-urlencoded');
    const form = new URLSearchParams(request.body.toString('utf8'));
    sweep();
    const id = form.get('consent') ?? '';
    const consent = consents.get(id);
    consents.delete(id);
    if (!consent) return errorPage(400, 'this consent page has expired or was answered already: start the login again');
    if (form.get('decision') !== 'allow') return redirectError(consent, 'access_denied', 'the user denied the request');
    const code = random();
    codes.set(code, { ...consent, expiresAt: Date.now() + context.lifetimes.oauth2Code * 1000, used: false, grantId: random() });
    return back(consent.redirectUri, { code, ...(consent.state !== null ? { state: consent.state } : {}) });
  }

  function newRefreshToken(grant: Grant): string {
    const token = random();
    refreshTokens.set(token, grant);
    return token;
  }

  /** grant_type=authorization_code (RFC 6749 4.1.3, RFC 7636 4.6) for a client already authenticated. */
  function exchangeCode(form: URLSearchParams, clientId: string, check: GrantCheck): GrantOutcome {
    const code = form.get('code');
    if (!code) return refuse('invalid_request', 'code is required');
    const entry = codes.get(code);
    if (!entry || entry.expiresAt <= Date.now()) return refuse('invalid_grant', 'unknown or expired authorization code');
    if (entry.used) {
      // RFC 6749 4.1.2: a code used twice was stolen, or its client is broken; what it gave is withdrawn.
      for (const [token, grant] of refreshTokens) if (grant.grantId === entry.grantId) refreshTokens.delete(token);
      return refuse('invalid_grant', 'the authorization code was used already: the tokens issued with it are revoked');
    }
    entry.used = true;
    if (entry.clientId !== clientId) return refuse('invalid_grant', 'the authorization code was issued to another client');
    if (form.get('redirect_uri') !== entry.redirectUri) return refuse('invalid_grant', 'redirect_uri differs from the one of the authorization request');
    const verifier = form.get('code_verifier') ?? '';
    if (!PKCE_VALUE.test(verifier)) return refuse('invalid_grant', 'code_verifier is missing or malformed (PKCE)');
    if (createHash('sha256').update(verifier, 'ascii').digest('base64url') !== entry.challenge) {
      return refuse('invalid_grant', 'code_verifier does not match the code_challenge (PKCE)');
    }
    const grant = { clientId, scope: entry.scope, grantId: entry.grantId };
    const refused = check(grant);
    if (refused) return { ok: false, ...refused };
    return { ok: true, grant, refreshToken: newRefreshToken(grant) };
  }

  /** grant_type=refresh_token (RFC 6749 6): the token is spent, a new one comes with the answer. */
  function refresh(form: URLSearchParams, clientId: string, check: GrantCheck): GrantOutcome {
    const token = form.get('refresh_token');
    if (!token) return refuse('invalid_request', 'refresh_token is required');
    const grant = refreshTokens.get(token);
    if (!grant || grant.clientId !== clientId) return refuse('invalid_grant', 'unknown, already used or revoked refresh token');
    // Refused for its scope or audience, the token stays good, as at a real server.
    const refused = check(grant);
    if (refused) return { ok: false, ...refused };
    refreshTokens.delete(token);
    return { ok: true, grant, refreshToken: newRefreshToken(grant) };
  }

  return {
    authorize,
    decide,
    exchangeCode,
    refresh,
    /** RFC 7009: a refresh token of this client revoked, with every token of its login; unknown tokens are no error. */
    revokeToken(token: string, clientId: string): void {
      const grant = refreshTokens.get(token);
      if (!grant || grant.clientId !== clientId) return;
      for (const [other, of] of refreshTokens) if (of.grantId === grant.grantId) refreshTokens.delete(other);
    },
    /** Every code, consent and refresh token stops working. */
    revoke(): void {
      consents.clear();
      codes.clear();
      refreshTokens.clear();
    },
  };
}

/** 303 to the redirect URI with `params` added to its query (RFC 6749 4.1.2: it keeps its own). */
function back(redirectUri: string, params: Record<string, string>): Reply {
  const url = new URL(redirectUri);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return { status: 303, headers: { location: url.href, 'cache-control': 'no-store' } };
}

const page = (title: string, body: string) =>
  `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
  '<style>body{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em;line-height:1.5}button{font-size:1em;padding:.3em 1.2em;margin-right:.5em}</style>' +
  `</head><body>${body}</body></html>`;

function errorPage(status: number, message: string): Reply {
  return htmlReply(status, page('Sandbox login: error', `<h1>The login cannot go on</h1><p>${escapeHtml(message)}</p>`));
}

function consentPage(consent: string, user: { sub: string; name: string }, clientId: string, scope: string[], redirectUri: string): Reply {
  return htmlReply(
    200,
    page(
      'Sandbox login: allow access?',
      '<h1>Allow access?</h1>' +
        `<p>You are the sandbox's demo user, <b id="user">${escapeHtml(user.name)}</b> (${escapeHtml(user.sub)}; no password: the sandbox has one user).</p>` +
        `<p>The client <b id="client">${escapeHtml(clientId)}</b> asks to act for you with the scope <b id="scope">${escapeHtml(scope.join(' ') || '(none)')}</b>, ` +
        `and sends you back to <code id="redirect">${escapeHtml(redirectUri)}</code>.</p>` +
        `<form method="post" action="authorize"><input type="hidden" name="consent" value="${escapeHtml(consent)}">` +
        '<button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny">Deny</button></form>',
    ),
  );
}
