import { codeNames, type ErrorCodeTable } from '../../core/errors.js';

/**
 * The codes only the Insights Hub agent raises, declared by the platform
 * (its declaration's `errorCodes`) and listed in docs/error-codes.md. Their
 * string values are public: flows test `msg.error.code`.
 */
export const AGENT_ERROR_CODES = {
  IAT_EXPIRED: { meaning: "the boarding configuration's IAT is older than 7 days", action: 'download a new boarding configuration, paste it, deploy' },
  IAT_USED: {
    meaning: 'the IAT was used already: the agent is onboarded elsewhere, or its state file was lost',
    action: 'offboard the agent in Insights Hub (or with the `offboard` action), download a new boarding configuration, paste it, deploy',
  },
  SECRET_EXPIRED: { meaning: 'the credentials expired and could not be rotated', action: 'offboard and onboard again, as above' },
  CLOCK_SKEW: { meaning: "the platform refused the assertion and this machine's clock is off (the message says by how much)", action: 'fix the clock (NTP)' },
  AGENT_STATE_ERROR: {
    meaning:
      'the stored state cannot be read or written (disk full, permissions, a file where its folder should be; a state folder that others may write or another user owns, a symbolic link at a state file or its lock; Redis down or unreachable), or it is corrupt or damaged (a registration without a usable client id, secret or key, or with a registration URI off the platform), or it is encrypted and cannot be decrypted (no key set, an unknown or wrong key, a value changed or cut short)',
    action:
      'the message says which and what to do; the stored credentials are kept, and a corrupt state, or one that cannot be decrypted, is never overwritten: restore it from the backup, or set the key it was encrypted with',
  },
  AGENT_STATE_UNREPLICATED: {
    meaning:
      'Redis with replicas (`minReplicas`, default 1 with Sentinel): new credentials (an onboarding or rotation answer) are written, but too few replicas acknowledged them within `replicaTimeoutMs`, so they are not used yet (a failover could lose them); a rotation goes on with the previous credentials',
    action:
      'check that the replicas run and replicate (`INFO replication` on the primary); the acknowledgement is tried again with the next token, and nothing is lost meanwhile',
  },
  AGENT_LOCKED: {
    meaning: 'file store: another Node-RED process uses this agent. Redis: another instance has been onboarding or rotating it for longer than 30 s',
    action: 'file store: give each process its own agent, or use Redis. Redis: try again; the lock of a crashed instance expires after 10 s',
  },
  NOT_ONBOARDED: { meaning: '`rotate` before the agent was onboarded', action: 'send `onboard` first' },
  OFFBOARDED: {
    meaning: 'this node offboarded (or deleted) its own agent; the state file is kept, marked',
    action: 'paste a new boarding configuration and deploy',
  },
} as const satisfies ErrorCodeTable;

export const AgentErrorCode = codeNames(AGENT_ERROR_CODES);

declare module '../../core/errors.js' {
  interface PlatformErrorCodes extends Record<keyof typeof AGENT_ERROR_CODES, unknown> {}
}
