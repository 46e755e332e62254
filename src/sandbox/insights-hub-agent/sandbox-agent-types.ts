// Public types of the sandbox's Insights Hub Agent Management (docs/protocols.md, Insights Hub agents):
// what the API shows of agents, and `sandbox.agents`, the test set-up without HTTP.

export const SECURITY_PROFILES = ['SHARED_SECRET', 'RSA_3072'] as const;
export type SecurityProfile = (typeof SECURITY_PROFILES)[number];
export type BoardingStatus = 'NOT_ONBOARDED' | 'ONBOARDING' | 'ONBOARDED';
export type OnlineStatus = 'ONLINE' | 'OFFLINE';

/** An agent as the API shows it. `eTag` is a decimal number as a string ("0" after creation). */
export interface SandboxAgentRecordView {
  id: string;
  name: string;
  securityProfile: SecurityProfile;
  entityId: string;
  eTag: string;
}

/** The boarding configuration ("onboarding key") a user downloads. */
export interface BoardingConfiguration {
  content: {
    baseUrl: string;
    iat: string;
    clientCredentialProfile: SecurityProfile[];
    clientId: string;
    tenant: string;
  };
  /** ISO 8601 with milliseconds: when the IAT expires. */
  expiration: string;
}

/** What a test may see of a registration: no secret, no RAT. */
export interface RegistrationView {
  /** 1 for the onboarding, +1 per rotation. */
  number: number;
  /** ISO 8601, agents' clock. */
  issuedAt: string;
  /** Epoch seconds, as `client_secret_expires_at`. */
  expiresAt: number;
  /** Whether it produced an agent token or its RAT was used for a rotation. */
  used: boolean;
  /** The registered key's `kid` (RSA_3072). */
  kid?: string;
}

export interface AgentStatusView {
  boarding: BoardingStatus;
  online: OnlineStatus;
  /** Registration responses issued since the agent was last onboarded: 1 after onboarding, +1 per rotation. */
  registrations: number;
  /** The oldest registration whose credentials still work: the newest that has been used, or the first. */
  activeRegistration?: RegistrationView | undefined;
  /** Newer registrations not used yet; their use retires `activeRegistration`. */
  pendingRegistrations: number;
  /** Agent access tokens issued since the agent was last onboarded. */
  tokensIssued: number;
}

/** `sandbox.agents`: set-up and inspection for tests, without HTTP. */
export interface SandboxAgents {
  /**
   * Creates an agent, as `POST /agents` does (which needs entityId). Default name "Sandbox agent N",
   * profile SHARED_SECRET, and an invented entityId (test set-up needs no asset).
   */
  create(options?: { name?: string | undefined; securityProfile?: SecurityProfile | undefined; entityId?: string | undefined }): SandboxAgentRecordView;
  /**
   * The boarding configuration, as `GET /agents/{id}/boarding/configuration`: the agent's current IAT
   * (generated at creation and offboarding; a new one only once it has expired). Throws for an onboarded agent.
   */
  boardingConfiguration(agentId: string): BoardingConfiguration;
  status(agentId: string): AgentStatusView;
  /** As `POST /agents/{id}/boarding/offboard`: also generates a new IAT. */
  offboard(agentId: string): void;
  /** The tenant agents live in (the demo app's host tenant). */
  readonly tenant: string;
}
