// Insights Hub Agent Management (docs/protocols.md, Insights Hub agents), the state behind the
// routes: agents, their initial access tokens (IATs), registrations with their
// history (for the "older credentials work until the newer are used" rule),
// access tokens issued, data source configurations and online status.
// No HTTP here; the routes (sandbox-agent-routes.ts) turns results into replies.
// Every time is read from the agents' clock (`now`), which tests can skew.

import { createPublicKey, generateKeyPair, randomBytes, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { Lifetimes } from '../types.js';
import type { SandboxAgentRecordView, AgentStatusView, BoardingConfiguration, BoardingStatus, OnlineStatus, SecurityProfile } from './sandbox-agent-types.js';

const generateRsaKeyPair = promisify(generateKeyPair);

/** How many superseded registrations are remembered (only to say "superseded" rather than "unknown"). */
const KEEP_SUPERSEDED = 5;

export interface Registration {
  number: number;
  /** SHARED_SECRET: the HS256 key of client assertions. */
  clientSecret?: string;
  /** RSA_3072: the registered public key. */
  publicKey?: KeyObject;
  kid?: string;
  rat: string;
  issuedAtMs: number;
  /** Epoch seconds. */
  secretExpiresAt: number;
  used: boolean;
}

export interface DataSourceConfiguration {
  configurationId: string;
  dataSources: unknown[];
  eTag: number;
}

export interface SandboxAgentRecord {
  id: string;
  name: string;
  securityProfile: SecurityProfile;
  entityId: string;
  eTag: number;
  createdAtMs: number;
  boarding: BoardingStatus;
  /**
   * Counts onboardings and offboardings: IATs and registrations of an earlier
   * generation are void (an IAT is only good for the onboarding that follows it).
   */
  generation: number;
  /** This generation's registrations, oldest first (superseded ones only as long as KEEP_SUPERSEDED allows). */
  registrations: Registration[];
  registrationCount: number;
  /** Registrations numbered below this are superseded: a newer one has been used. */
  activeFrom: number;
  /** Access tokens issued this generation: jti → exp (epoch ms). Offboarding voids them. */
  tokens: Map<string, number>;
  tokensIssued: number;
  /** Assertion jtis already used: jti → when they may be forgotten (epoch ms). */
  usedAssertionIds: Map<string, number>;
  dataSourceConfiguration?: DataSourceConfiguration;
  /** The agent's current IAT (the seed: generated when the agent is created or offboarded). */
  iat?: { token: string; jti: string; exp: number };
  /** Epoch ms: the agent is ONLINE while a token it got is unexpired. */
  lastTokenExpMs?: number | undefined;
  onlineSinceMs?: number;
  offlineSinceMs: number;
}

interface IatRecord {
  agentId: string;
  generation: number;
  /** Epoch seconds. */
  exp: number;
  used: boolean;
}

/** Why an IAT does not open registration; the router turns it into a 401. */
export type IatProblem = 'invalid' | 'expired' | 'used' | 'agent-gone' | 'superseded';

interface IatSigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export class SandboxAgentRegistry {
  private readonly agents = new Map<string, SandboxAgentRecord>();
  private readonly iats = new Map<string, IatRecord>();
  private nameCounter = 0;

  private constructor(
    private readonly iatKey: IatSigningKey,
    private readonly options: { baseUrl: string; tenant: string; lifetimes: Lifetimes; now: () => number },
  ) {}

  static async create(options: { baseUrl: string; tenant: string; lifetimes: Lifetimes; now: () => number }): Promise<SandboxAgentRegistry> {
    const { privateKey, publicKey } = await generateRsaKeyPair('rsa', { modulusLength: 2048 });
    return new SandboxAgentRegistry({ kid: randomUUID(), privateKey, publicKey }, options);
  }

  get tenant(): string {
    return this.options.tenant;
  }

  now(): number {
    return this.options.now();
  }

  get(agentId: string): SandboxAgentRecord | undefined {
    return this.agents.get(agentId);
  }

  view(agent: SandboxAgentRecord): SandboxAgentRecordView {
    return { id: agent.id, name: agent.name, securityProfile: agent.securityProfile, entityId: agent.entityId, eTag: String(agent.eTag) };
  }

  nameTaken(name: string, exceptId?: string): boolean {
    for (const agent of this.agents.values()) if (agent.name === name && agent.id !== exceptId) return true;
    return false;
  }

  /** A new agent; the caller has checked the fields (name free, profile valid). */
  createAgent(fields: { name?: string | undefined; securityProfile?: SecurityProfile | undefined; entityId?: string | undefined }): SandboxAgentRecord {
    let name = fields.name;
    while (name === undefined) {
      const candidate = `Sandbox agent ${++this.nameCounter}`;
      if (!this.nameTaken(candidate)) name = candidate;
    }
    const now = this.now();
    const agent: SandboxAgentRecord = {
      // Insights Hub ids are 32 hex digits.
      id: randomUUID().replace(/-/g, ''),
      name,
      securityProfile: fields.securityProfile ?? 'SHARED_SECRET',
      entityId: fields.entityId ?? randomUUID().replace(/-/g, ''),
      eTag: 0,
      createdAtMs: now,
      boarding: 'NOT_ONBOARDED',
      generation: 0,
      registrations: [],
      registrationCount: 0,
      activeFrom: 1,
      tokens: new Map(),
      tokensIssued: 0,
      usedAssertionIds: new Map(),
      offlineSinceMs: now,
    };
    this.agents.set(agent.id, agent);
    this.mintIat(agent);
    return agent;
  }

  updateAgent(agent: SandboxAgentRecord, fields: { name: string; securityProfile: SecurityProfile; entityId: string }): void {
    Object.assign(agent, fields);
    agent.eTag += 1;
  }

  /** Its IATs are remembered until they expire, to say "the agent no longer exists". */
  deleteAgent(agent: SandboxAgentRecord): void {
    this.agents.delete(agent.id);
  }

  // --- boarding --------------------------------------------------------------

  /**
   * The boarding configuration with the agent's current IAT; only for an agent
   * that is not onboarded. A new IAT only when the current one has expired.
   */
  boardingConfiguration(agent: SandboxAgentRecord): BoardingConfiguration {
    const current = agent.iat && agent.iat.exp * 1000 > this.now() && !this.iats.get(agent.iat.jti)?.used ? agent.iat : this.mintIat(agent);
    return {
      content: {
        baseUrl: this.options.baseUrl,
        iat: current.token,
        clientCredentialProfile: [agent.securityProfile],
        clientId: agent.id,
        tenant: this.options.tenant,
      },
      expiration: new Date(current.exp * 1000).toISOString(),
    };
  }

  /** A new IAT for the agent's current generation; the earlier ones stay valid until used, expired or superseded. */
  private mintIat(agent: SandboxAgentRecord): { token: string; jti: string; exp: number } {
    const iat = Math.ceil(this.now() / 1000);
    const exp = iat + this.options.lifetimes.agentIat;
    const jti = randomUUID();
    this.pruneIats();
    this.iats.set(jti, { agentId: agent.id, generation: agent.generation, exp, used: false });
    const token = signRs256(
      {
        iss: `${this.options.baseUrl}/api/agentmanagement/v3`,
        sub: agent.id,
        aud: ['southgate'],
        iat,
        exp,
        jti,
        ten: this.options.tenant,
        scope: ['IAT'],
        client_credential_profile: [agent.securityProfile],
        schemas: ['urn:siemens:mindsphere:v1'],
      },
      this.iatKey,
    );
    agent.iat = { token, jti, exp };
    return agent.iat;
  }

  /** The agent an IAT lets register, or why not. Does not consume it (a failed registration leaves it usable). */
  checkIat(token: string): { agent: SandboxAgentRecord; jti: string } | { problem: IatProblem; expiredAt?: Date } {
    const claims = verifyRs256(token, this.iatKey.publicKey);
    const jti = claims?.jti;
    if (!claims || typeof jti !== 'string' || typeof claims.exp !== 'number') return { problem: 'invalid' };
    const record = this.iats.get(jti);
    if (!record || record.agentId !== claims.sub) return { problem: 'invalid' };
    if (record.used) return { problem: 'used' };
    if (record.exp * 1000 <= this.now()) return { problem: 'expired', expiredAt: new Date(record.exp * 1000) };
    const agent = this.agents.get(record.agentId);
    if (!agent) return { problem: 'agent-gone' };
    if (record.generation !== agent.generation || agent.boarding !== 'NOT_ONBOARDED') return { problem: 'superseded' };
    return { agent, jti };
  }

  /** Onboards: consumes the IAT, voids the agent's other IATs, and makes the first registration. */
  onboard(agent: SandboxAgentRecord, iatJti: string, credential: { publicKey?: KeyObject; kid?: string }): Registration {
    const record = this.iats.get(iatJti);
    if (record) record.used = true;
    this.startOver(agent, 'ONBOARDING');
    return this.addRegistration(agent, credential);
  }

  /** Offboards: registrations, RATs and tokens stop working; IATs issued before are void. */
  offboard(agent: SandboxAgentRecord): void {
    const now = this.now();
    if (this.isOnline(agent, now)) agent.offlineSinceMs = now;
    agent.lastTokenExpMs = undefined;
    this.startOver(agent, 'NOT_ONBOARDED');
    agent.usedAssertionIds.clear();
    this.mintIat(agent); // the seed: offboarding generates a new IAT
  }

  /** A new generation of the agent: no registration, no token; what came before stops working. */
  private startOver(agent: SandboxAgentRecord, boarding: SandboxAgentRecord['boarding']): void {
    agent.generation += 1;
    agent.boarding = boarding;
    agent.registrations = [];
    agent.registrationCount = 0;
    agent.activeFrom = 1;
    agent.tokens.clear();
    agent.tokensIssued = 0;
  }

  // --- registrations ---------------------------------------------------------

  /** The registration a RAT belongs to, if it is one of this agent's (possibly superseded). */
  registrationByRat(agent: SandboxAgentRecord, rat: string): Registration | undefined {
    return agent.registrations.find((registration) => registration.rat === rat);
  }

  isSuperseded(agent: SandboxAgentRecord, registration: Registration): boolean {
    return registration.number < agent.activeFrom;
  }

  /** Credentials that work now, newest first. */
  validRegistrations(agent: SandboxAgentRecord): Registration[] {
    return agent.registrations.filter((registration) => !this.isSuperseded(agent, registration)).reverse();
  }

  supersededRegistrations(agent: SandboxAgentRecord): Registration[] {
    return agent.registrations.filter((registration) => this.isSuperseded(agent, registration));
  }

  /** A rotation: a new registration, which makes the one whose RAT was used count as used. */
  rotate(agent: SandboxAgentRecord, usedRat: Registration, credential: { publicKey?: KeyObject; kid?: string }): Registration {
    this.markUsed(agent, usedRat);
    return this.addRegistration(agent, credential);
  }

  /** First use of newer credentials retires every older registration. */
  markUsed(agent: SandboxAgentRecord, registration: Registration): void {
    registration.used = true;
    agent.activeFrom = Math.max(agent.activeFrom, registration.number);
    const keepFrom = agent.activeFrom - KEEP_SUPERSEDED;
    agent.registrations = agent.registrations.filter((entry) => entry.number >= keepFrom);
  }

  private addRegistration(agent: SandboxAgentRecord, credential: { publicKey?: KeyObject; kid?: string }): Registration {
    const now = this.now();
    agent.registrationCount += 1;
    const registration: Registration = {
      number: agent.registrationCount,
      ...(agent.securityProfile === 'SHARED_SECRET' ? { clientSecret: randomBytes(32).toString('base64url') } : credential),
      rat: randomBytes(32).toString('base64url'),
      issuedAtMs: now,
      secretExpiresAt: Math.floor(now / 1000) + this.options.lifetimes.agentClientSecret,
      used: false,
    };
    agent.registrations.push(registration);
    return registration;
  }

  // --- client assertions and access tokens ----------------------------------

  /** Whether an assertion's jti was used already; else records it until `forgetAtMs`. */
  assertionIdReused(agent: SandboxAgentRecord, jti: string, forgetAtMs: number): boolean {
    const now = this.now();
    for (const [id, until] of agent.usedAssertionIds) if (until < now) agent.usedAssertionIds.delete(id);
    if (agent.usedAssertionIds.has(jti)) return true;
    agent.usedAssertionIds.set(jti, forgetAtMs);
    return false;
  }

  /** Records an access token issued with `registration`'s credentials. */
  tokenIssued(agent: SandboxAgentRecord, registration: Registration, jti: string, expMs: number): void {
    const now = this.now();
    this.markUsed(agent, registration);
    if (agent.boarding === 'ONBOARDING') agent.boarding = 'ONBOARDED';
    for (const [id, exp] of agent.tokens) if (exp <= now) agent.tokens.delete(id);
    agent.tokens.set(jti, expMs);
    agent.tokensIssued += 1;
    if (!this.isOnline(agent, now)) agent.onlineSinceMs = now;
    agent.lastTokenExpMs = Math.max(agent.lastTokenExpMs ?? 0, expMs);
    agent.offlineSinceMs = agent.lastTokenExpMs;
  }

  /** Whether an access token (already verified by signature and expiry) is still one of the agent's. */
  tokenActive(agent: SandboxAgentRecord, jti: string): boolean {
    return agent.tokens.has(jti);
  }

  // --- status -----------------------------------------------------------------

  /** ONLINE while an agent token issued to it is unexpired. */
  isOnline(agent: SandboxAgentRecord, now = this.now()): boolean {
    return agent.lastTokenExpMs !== undefined && agent.lastTokenExpMs > now;
  }

  onlineStatus(agent: SandboxAgentRecord): { status: OnlineStatus; since: string } {
    const online = this.isOnline(agent);
    const since = (online ? agent.onlineSinceMs : undefined) ?? agent.offlineSinceMs;
    return { status: online ? 'ONLINE' : 'OFFLINE', since: new Date(since).toISOString() };
  }

  statusView(agent: SandboxAgentRecord): AgentStatusView {
    const valid = this.validRegistrations(agent);
    const active = valid.at(-1);
    return {
      boarding: agent.boarding,
      online: this.onlineStatus(agent).status,
      registrations: agent.registrationCount,
      activeRegistration: active && {
        number: active.number,
        issuedAt: new Date(active.issuedAtMs).toISOString(),
        expiresAt: active.secretExpiresAt,
        used: active.used,
        ...(active.kid === undefined ? {} : { kid: active.kid }),
      },
      pendingRegistrations: Math.max(0, valid.length - 1),
      tokensIssued: agent.tokensIssued,
    };
  }

  private pruneIats(): void {
    const now = this.now() / 1000;
    for (const [jti, record] of this.iats) if (record.exp < now) this.iats.delete(jti);
  }
}

/** An RSA public key from a JWK, or the message of a 400. */
export function rsaKeyFromJwk(jwk: Record<string, unknown>, requiredBits: number): KeyObject | string {
  if (jwk.kty !== 'RSA') return 'jwks.keys[0].kty must be "RSA"';
  for (const field of ['n', 'e', 'kid'] as const) {
    if (typeof jwk[field] !== 'string' || jwk[field] === '') return `jwks.keys[0].${field} is required`;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: 'RSA', n: jwk.n as string, e: jwk.e as string }, format: 'jwk' });
  } catch {
    return 'jwks.keys[0] is not a valid RSA public key (n and e must be base64url)';
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (bits !== requiredBits) return `jwks.keys[0] must be a ${requiredBits}-bit RSA key; this one has ${bits} bits`;
  return key;
}

// IATs are signed synchronously with node:crypto (RS256), so that
// `sandbox.agents.boardingConfiguration()` can return at once.

function signRs256(claims: Record<string, unknown>, key: IatSigningKey): string {
  const head = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: key.kid })).toString('base64url');
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${head}.${body}`), key.privateKey).toString('base64url');
  return `${head}.${body}.${signature}`;
}

function verifyRs256(token: string, publicKey: KeyObject): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const head = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as { alg?: unknown };
    if (head.alg !== 'RS256') return undefined;
    if (!verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, Buffer.from(parts[2], 'base64url'))) return undefined;
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
