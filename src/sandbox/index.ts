// The sandbox: a local imitation of the platforms for tests, the demo and `npm run sandbox`.

export { startSandbox } from './server.js';
export { DEFAULT_LIFETIMES, ENDPOINT_NAMES } from './types.js';
export type {
  CiscoEiTenant,
  DemoCredentials,
  EndpointName,
  Fault,
  Lifetimes,
  PlatformName,
  Sandbox,
  SandboxOptions,
} from './types.js';
export type { DataTrailsApplication, DataTrailsApplications, DataTrailsCredential } from './datatrails-applications.js';
export type {
  SandboxAgentRecordView,
  AgentStatusView,
  BoardingConfiguration,
  BoardingStatus,
  OnlineStatus,
  RegistrationView,
  SandboxAgents,
  SecurityProfile,
} from './insights-hub-agent/sandbox-agent-types.js';
