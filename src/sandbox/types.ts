// Public types of the sandbox. Tests and the demo script depend on these names.

import type { DataTrailsApplications } from './datatrails-applications.js';
import type { SandboxAgents } from './insights-hub-agent/sandbox-agent-types.js';

/** Lifetimes in seconds. Every one is read at the moment a token or session is issued, so tests can change them at run time. */
export interface Lifetimes {
  insightsHubAppToken: number;
  /** Insights Hub service credentials: the token's `expires_in` and `exp - iat`. */
  insightsHubServiceToken: number;
  ciscoEiAccessToken: number;
  ciscoEiRefreshToken: number;
  dataTrailsToken: number;
  /** MBP: how old a session must be for the server's sweep to delete it (7 days); the sweep runs at start and every seventh of this (24 h). */
  mbpSession: number;
  /** MBP: the `user_session` cookie's Max-Age; longer than the session, as the seed shows (about 30 days). */
  mbpCookie: number;
  /** Insights Hub agents: how long an initial access token (IAT) in a boarding configuration is valid. */
  agentIat: number;
  /** Insights Hub agents: how long a registration's client secret (or registered key) is valid (`client_secret_expires_at`). */
  agentClientSecret: number;
  /** Insights Hub agents: the agent access token's `exp - iat` and `expires_in`. */
  agentToken: number;
  /** OAuth 2.0: the access token's `expires_in` (every grant). */
  oauth2Token: number;
  /** OAuth 2.0 authorization code grant: how long a code may wait for its exchange. */
  oauth2Code: number;
}

/** The real services' defaults (docs/protocols.md). */
export const DEFAULT_LIFETIMES: Readonly<Lifetimes> = Object.freeze({
  insightsHubAppToken: 1800,
  insightsHubServiceToken: 1800,
  ciscoEiAccessToken: 300,
  ciscoEiRefreshToken: 1800,
  dataTrailsToken: 3600,
  mbpSession: 7 * 24 * 3600,
  mbpCookie: 30 * 24 * 3600,
  agentIat: 7 * 24 * 3600,
  agentClientSecret: 7 * 24 * 3600,
  agentToken: 3600,
  oauth2Token: 3600,
  oauth2Code: 60,
});

export const ENDPOINT_NAMES = [
  'insightsHub.token',
  'insightsHub.users',
  'insightsHub.tokenKeys',
  'insightsHubService.token',
  'agents.register',
  'agents.rotate',
  'agents.token',
  'agents.tokenKey',
  'agents.dataSourceConfig',
  'agents.admin',
  'ciscoEi.token',
  'ciscoEi.me',
  'ciscoEi.agents',
  'ciscoEi.assetTypes',
  'dataTrails.token',
  'dataTrails.assets',
  'dataTrails.applications',
  'mbp.login',
  'mbp.logout',
  'mbp.devices',
  'mbp.sensors',
  'oauth2.metadata',
  'oauth2.authorize',
  'oauth2.token',
  'oauth2.revoke',
  'oauth2.whoami',
  'oauth2.items',
  'sandbox.echo',
  'sandbox.redirect',
] as const;

export type EndpointName = (typeof ENDPOINT_NAMES)[number];

/** The platforms whose credentials the echo endpoint recognises, named as the nodes' `platform` property names them (DESIGN.md). */
export type PlatformName = 'insights-hub-app' | 'insights-hub-agent' | 'insights-hub-service' | 'cisco-ei' | 'datatrails' | 'mbp' | 'oauth2';

/**
 * A fault replaces (or, for `delay`, precedes) the normal answer of one endpoint.
 * `times` omitted = until cleared; otherwise it counts down once per request it affects.
 */
export type Fault =
  | { kind: 'refuse'; times?: number }
  | { kind: 'delay'; ms: number; times?: number }
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string; times?: number }
  | { kind: 'malformed'; times?: number }
  | { kind: 'oversized'; bytes?: number; times?: number }
  /**
   * The request is processed normally (its state changes happen: a rotation is
   * applied, a token issued), then the socket is destroyed instead of sending
   * the answer: a response lost on the way back.
   */
  | { kind: 'dropResponse'; times?: number }
  /**
   * DataTrails' rate limit (dataTrails.* endpoints only): 429 with
   * `Archivist-Rate-Limit-Reset: <resetSeconds>`, the header the official
   * Python SDK reads (archivist/errors.py), and the API's error body.
   */
  | { kind: 'rateLimited'; resetSeconds: number; times?: number };

export interface CiscoEiTenant {
  id: string;
  name: string;
}

/** One working credential set per platform, fixed so the demo and the docs can show them. */
export interface DemoCredentials {
  insightsHubApp: {
    clientId: string;
    clientSecret: string;
    appName: string;
    appVersion: string;
    hostTenant: string;
    userTenant: string;
  };
  /** Service credentials of one tenant (the tenant names the piam host, which the sandbox's own address has not). */
  insightsHubService: { clientId: string; clientSecret: string; tenant: string };
  ciscoEi: {
    username: string;
    password: string;
    /** The first of `tenants`. */
    tenantId: string;
    tenants: CiscoEiTenant[];
  };
  dataTrails: {
    clientId: string;
    clientSecret: string;
  };
  mbp: {
    username: string;
    password: string;
    firstName: string;
    lastName: string;
  };
  /**
   * The OAuth 2.0 authorization server's one client, the audience of its API,
   * and the user its consent page logs in (no password: the sandbox has one user).
   */
  oauth2: { clientId: string; clientSecret: string; audience: string; user: { sub: string; name: string } };
}

export interface SandboxOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0 = a free port. */
  port?: number;
  lifetimes?: Partial<Lifetimes>;
}

export interface Sandbox {
  /** 'http://127.0.0.1:PORT', no trailing slash. MBP lives under `${url}/mbp`. */
  readonly url: string;
  /** Mutable: a change applies to the next token or session issued. */
  readonly lifetimes: Lifetimes;
  readonly demo: DemoCredentials;
  /** DataTrails app registrations, for tests to inspect, seed, and set the quota. */
  readonly dataTrailsApplications: DataTrailsApplications;
  /** Insights Hub agents (Agent Management, docs/protocols.md, Insights Hub agents): set-up and inspection without HTTP. */
  readonly agents: SandboxAgents;
  /**
   * Mutable, default 0. The Agent Management endpoints' clock is `Date.now() + clockSkewMs`:
   * client assertions, IATs, secrets and agent tokens are judged against it, tokens
   * and IATs are stamped with it, and those endpoints' `Date` header shows it.
   */
  clockSkewMs: number;
  /** Sets the fault of one endpoint, replacing the one it had. */
  fault(endpoint: EndpointName, fault: Fault): void;
  /** Clears the fault of one endpoint, or of all when none is named. */
  clearFaults(endpoint?: EndpointName): void;
  /** Every request that reached the endpoint, faulted or not. */
  calls(endpoint: EndpointName): number;
  resetCalls(): void;
  /** Every token and session issued so far stops working (401 on use). */
  revokeTokens(): void;
  /** Closes the server and its open sockets; idempotent. */
  stop(): Promise<void>;
}
