// The client assertion of the agent token request (docs/protocols.md, Insights Hub agents), verified
// for real: the signature with the agent's current (or still valid older)
// credentials, then every claim, judged against the agents' clock.
//
// Errors: RFC 7523 §3.2 says an invalid client assertion is an `invalid_client`
// error, and RFC 6749 §5.2 allows 401 for it. So everything about the
// assertion itself (not a JWT, bad signature, a wrong or missing claim, a clock
// that is off, an expired secret, a reused jti) answers
//   401 {"error":"invalid_client","error_description":"…"}
// while a malformed request (wrong content type, grant_type, assertion type, no
// assertion) answers 400 with invalid_request or unsupported_grant_type (the router).

import { compactVerify } from 'jose';
import { isPlainObject } from '../http-kit.js';
import type { SandboxAgentRecord, SandboxAgentRegistry, Registration } from './sandbox-agent-registry.js';

export const ASSERTION_AUDIENCE = 'southgate';
export const ASSERTION_SCHEMA = 'urn:siemens:mindsphere:v1';
/** Tolerated difference between the agent's clock and the platform's, in seconds. */
export const CLOCK_LEEWAY_SECONDS = 60;
/** The longest assertion accepted: iat + 1 h (the official clients' exp). */
export const MAX_ASSERTION_LIFETIME_SECONDS = 3600;

const ALGORITHMS = { SHARED_SECRET: ['HS256'], RSA_3072: ['RS256', 'RS384'] } as const;

export type AssertionResult =
  | { ok: true; agent: SandboxAgentRecord; registration: Registration; claims: Record<string, unknown> }
  | { ok: false; description: string };

const reject = (description: string): AssertionResult => ({ ok: false, description });

export async function checkClientAssertion(state: SandboxAgentRegistry, assertion: string, formClientId: string | null): Promise<AssertionResult> {
  const decoded = decodeJwt(assertion);
  if (!decoded) return reject('client_assertion is not a signed JWT (header.payload.signature, base64url JSON)');
  const { header, claims } = decoded;

  const clientId = claims.iss;
  if (typeof clientId !== 'string' || clientId === '') return reject('The assertion needs iss = the client id (agent id)');
  if (formClientId !== null && formClientId !== clientId) return reject("client_id does not match the assertion's iss");
  const agent = state.get(clientId);
  if (!agent) return reject(`Unknown client id in iss: ${clientId}`);
  if (agent.boarding === 'NOT_ONBOARDED') return reject('The agent is not onboarded: onboard it with a boarding configuration first');

  const algorithms: readonly string[] = ALGORITHMS[agent.securityProfile];
  if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
    return reject(`alg "${String(header.alg)}" is not accepted for a ${agent.securityProfile} agent: sign with ${algorithms.join(' or ')}`);
  }
  const registration = await findSigner(state.validRegistrations(agent), assertion, algorithms);
  if (!registration) {
    const superseded = await findSigner(state.supersededRegistrations(agent), assertion, algorithms);
    return reject(
      superseded
        ? 'The assertion is signed with credentials that a newer registration (rotation) has replaced: use the newest registration'
        : `The assertion's signature does not verify with the agent's ${agent.securityProfile === 'SHARED_SECRET' ? 'client secret' : 'registered public key'}`,
    );
  }

  const claimProblem = checkClaims(claims, clientId, state.tenant);
  if (claimProblem) return reject(claimProblem);
  const now = state.now();
  const timeProblem = checkTimes(claims, now / 1000);
  if (timeProblem) return reject(`${timeProblem} (server time ${new Date(now).toISOString()}): check the device's clock`);

  if (registration.secretExpiresAt * 1000 <= now) {
    const what = agent.securityProfile === 'SHARED_SECRET' ? 'client secret' : 'key registration';
    return reject(
      `The ${what} expired at ${new Date(registration.secretExpiresAt * 1000).toISOString()}: rotate the credentials with the registration access token`,
    );
  }
  const forgetAtMs = ((claims.exp as number) + CLOCK_LEEWAY_SECONDS) * 1000;
  if (state.assertionIdReused(agent, claims.jti as string, forgetAtMs)) {
    return reject("The assertion's jti was used before: every assertion needs a new jti");
  }
  return { ok: true, agent, registration, claims };
}

/** The claims other than the times; a message naming the claim, or undefined. */
function checkClaims(claims: Record<string, unknown>, clientId: string, tenant: string): string | undefined {
  if (claims.sub !== clientId) return 'The assertion needs sub = iss = the client id (agent id)';
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
  if (!audiences.includes(ASSERTION_AUDIENCE)) return `The assertion needs aud = "${ASSERTION_AUDIENCE}" (or an array containing it)`;
  if (claims.ten !== tenant) return `The assertion needs ten = the agent's tenant ("${tenant}")`;
  if (!Array.isArray(claims.schemas) || !claims.schemas.includes(ASSERTION_SCHEMA)) {
    return `The assertion needs schemas = ["${ASSERTION_SCHEMA}"]`;
  }
  if (typeof claims.jti !== 'string' || claims.jti === '') return 'The assertion needs a jti (a new random id for every assertion)';
  for (const name of ['iat', 'nbf', 'exp'] as const) {
    if (typeof claims[name] !== 'number' || !Number.isFinite(claims[name])) return `The assertion needs ${name} (epoch seconds)`;
  }
  return undefined;
}

/** iat, nbf, exp against the server's clock `now` (epoch seconds), with the leeway; a message, or undefined. */
function checkTimes(claims: Record<string, unknown>, now: number): string | undefined {
  const { iat, nbf, exp } = claims as { iat: number; nbf: number; exp: number };
  const ahead = (time: number): string => `${Math.round(time - now)} s ahead of the server's clock`;
  if (iat > now + CLOCK_LEEWAY_SECONDS) return `The assertion's iat is ${ahead(iat)}`;
  if (nbf > now + CLOCK_LEEWAY_SECONDS) return `The assertion's nbf is ${ahead(nbf)}`;
  if (exp <= now - CLOCK_LEEWAY_SECONDS) return `The assertion expired ${Math.round(now - exp)} s ago (exp ${new Date(exp * 1000).toISOString()})`;
  if (exp <= iat) return "The assertion's exp must be after its iat";
  if (exp > now + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_LEEWAY_SECONDS) {
    return `The assertion's exp is ${Math.round(exp - now)} s ahead: at most ${MAX_ASSERTION_LIFETIME_SECONDS} s are accepted`;
  }
  if (exp - iat > MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_LEEWAY_SECONDS) {
    return `The assertion is valid ${Math.round(exp - iat)} s (exp - iat): at most ${MAX_ASSERTION_LIFETIME_SECONDS} s are accepted`;
  }
  return undefined;
}

/** The registration whose secret or key verifies the signature, trying each in order. */
async function findSigner(registrations: Registration[], assertion: string, algorithms: readonly string[]): Promise<Registration | undefined> {
  for (const registration of registrations) {
    const key = registration.publicKey ?? (registration.clientSecret === undefined ? undefined : Buffer.from(registration.clientSecret, 'utf8'));
    if (key === undefined) continue;
    try {
      await compactVerify(assertion, key, { algorithms: [...algorithms] });
      return registration;
    } catch {
      // not this one
    }
  }
  return undefined;
}

function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return isPlainObject(header) && isPlainObject(claims) ? { header, claims } : undefined;
  } catch {
    return undefined;
  }
}
