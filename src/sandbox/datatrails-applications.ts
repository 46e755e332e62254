// DataTrails app registrations (docs/protocols.md, DataTrails), kept in memory. Tests reach
// this store through `sandbox.dataTrailsApplications` to seed it, inspect it,
// and set the quota. Registered applications can get tokens.

import { randomBytes, randomUUID } from 'node:crypto';
import { isoSeconds, isPlainObject } from './http-kit.js';

export interface DataTrailsCredential {
  secret: string;
  valid_from: string;
  valid_until: string;
}

export interface DataTrailsApplication {
  identity: string;
  display_name: string;
  client_id: string;
  tenant_id: string;
  credentials: DataTrailsCredential[];
  custom_claims: Record<string, string>;
  roles: string[];
}

export interface ApplicationFields {
  display_name: string;
  custom_claims?: Record<string, string>;
  roles?: string[];
}

const RESERVED_CLAIM_PREFIXES = ['jit_', 'arc_'];
/** `v1Role` of DataTrails' OpenAPI (appregistrationsv1.swagger.json): the only roles there are. */
const ROLES = ['ROLE_UNSPECIFIED', 'OWNER'];

/**
 * Checks a create (`partial` false) or update (`partial` true) body.
 * Returns the fields, or the message of a 400.
 */
export function checkApplicationFields(body: unknown, partial: boolean): Partial<ApplicationFields> | string {
  if (!isPlainObject(body)) return 'The request body must be a JSON object';
  const fields: Partial<ApplicationFields> = {};
  if (body.display_name !== undefined || !partial) {
    if (typeof body.display_name !== 'string' || body.display_name.trim() === '') return 'display_name is required';
    fields.display_name = body.display_name;
  }
  if (body.custom_claims !== undefined) {
    if (!isPlainObject(body.custom_claims)) return 'custom_claims must be an object';
    for (const [name, value] of Object.entries(body.custom_claims)) {
      if (typeof value !== 'string') return `custom_claims.${name} must be a string`;
      if (RESERVED_CLAIM_PREFIXES.some((prefix) => name.toLowerCase().startsWith(prefix))) {
        return `custom claim names must not start with ${RESERVED_CLAIM_PREFIXES.join(' or ')}: ${name}`;
      }
    }
    fields.custom_claims = body.custom_claims as Record<string, string>;
  }
  // Roles are set at creation only; an update changes display_name and custom_claims.
  if (!partial && body.roles !== undefined) {
    if (!Array.isArray(body.roles) || !body.roles.every((role) => typeof role === 'string' && ROLES.includes(role))) {
      return `roles must be an array of ${ROLES.join(' or ')}`;
    }
    fields.roles = body.roles as string[];
  }
  return fields;
}

export class DataTrailsApplications {
  /** Creating through the API answers 402 once this many applications exist. */
  quota = 20;
  /** How long a new or regenerated secret is valid; the real service gives one year. */
  secretLifetimeSeconds = 365 * 24 * 3600;
  private readonly byUuid = new Map<string, DataTrailsApplication>();
  /** Client ids (subjects) with administrator rights, for the issuer of this tenancy's app tokens. */
  private readonly administrators = new Set<string>();

  /** `issuer`: the `iss` of the tokens this tenancy's app registrations get (`{url}/appidpv1`). */
  constructor(
    readonly tenantId: string,
    readonly issuer: string,
  ) {}

  /** Gives a client id administrator rights (subject = client id, issuer = the app IdP), as the seed's Settings screen does. */
  grantAdministrator(clientId: string): void {
    this.administrators.add(clientId);
  }

  revokeAdministrator(clientId: string): void {
    this.administrators.delete(clientId);
  }

  isAdministrator(subject: string, issuer = this.issuer): boolean {
    return issuer === this.issuer && this.administrators.has(subject);
  }

  get size(): number {
    return this.byUuid.size;
  }

  /** All applications, oldest first, secrets redacted. */
  list(): DataTrailsApplication[] {
    return [...this.byUuid.values()].map(redacted);
  }

  /** One application, secret redacted. */
  get(uuid: string): DataTrailsApplication | undefined {
    const application = this.byUuid.get(uuid);
    return application && redacted(application);
  }

  /** Registers an application whatever the quota; the result holds the only copy of the secret. */
  add(fields: ApplicationFields): DataTrailsApplication {
    const uuid = randomUUID();
    const application: DataTrailsApplication = {
      identity: `applications/${uuid}`,
      display_name: fields.display_name,
      client_id: uuid,
      tenant_id: this.tenantId,
      credentials: [this.newCredential()],
      custom_claims: { ...fields.custom_claims },
      roles: [...(fields.roles ?? [])],
    };
    this.byUuid.set(uuid, application);
    return structuredClone(application);
  }

  /** Adds `count` applications named `${prefix} 1`, `${prefix} 2`, …, whatever the quota (for paging tests). */
  addMany(count: number, prefix = 'Sandbox app'): DataTrailsApplication[] {
    const start = this.byUuid.size + 1;
    return Array.from({ length: count }, (_, index) => this.add({ display_name: `${prefix} ${start + index}` }));
  }

  /** Partial update; returns the application with its secret redacted, or undefined when missing. */
  update(uuid: string, fields: Partial<ApplicationFields>): DataTrailsApplication | undefined {
    const application = this.byUuid.get(uuid);
    if (!application) return undefined;
    if (fields.display_name !== undefined) application.display_name = fields.display_name;
    if (fields.custom_claims !== undefined) application.custom_claims = { ...fields.custom_claims };
    return redacted(application);
  }

  /** Deleting an application also ends its administrator rights. */
  delete(uuid: string): boolean {
    this.administrators.delete(uuid);
    return this.byUuid.delete(uuid);
  }

  /** A new secret with new validity dates; the result holds its only copy. The old secret stops working. */
  regenerateSecret(uuid: string): DataTrailsApplication | undefined {
    const application = this.byUuid.get(uuid);
    if (!application) return undefined;
    application.credentials = [this.newCredential()];
    return structuredClone(application);
  }

  /** The application these client credentials belong to, if the secret is valid now. */
  authenticate(clientId: string, secret: string): DataTrailsApplication | undefined {
    const application = this.byUuid.get(clientId);
    const now = Date.now();
    const valid = application?.credentials.some(
      (credential) => credential.secret === secret && Date.parse(credential.valid_from) <= now && now < Date.parse(credential.valid_until),
    );
    return application && valid ? redacted(application) : undefined;
  }

  clear(): void {
    for (const uuid of this.byUuid.keys()) this.administrators.delete(uuid);
    this.byUuid.clear();
  }

  private newCredential(): DataTrailsCredential {
    // The real secrets are 64 hex digits.
    const now = new Date();
    return {
      secret: randomBytes(32).toString('hex'),
      valid_from: isoSeconds(now),
      valid_until: isoSeconds(new Date(now.getTime() + this.secretLifetimeSeconds * 1000)),
    };
  }
}

function redacted(application: DataTrailsApplication): DataTrailsApplication {
  const copy = structuredClone(application);
  for (const credential of copy.credentials) credential.secret = '';
  return copy;
}
