// The platforms the sandbox imitates, by name. Adding one: its module here,
// one line below, and its names in types.ts (endpoints, lifetime, demo).

import { createCiscoEi } from './cisco-ei.js';
import { createDataTrails } from './datatrails.js';
import type { Platform, SandboxContext } from './http-kit.js';
import { createInsightsHub, type InsightsHubPlatform } from './insights-hub.js';
import { createInsightsHubAgents } from './insights-hub-agent/sandbox-agent-routes.js';
import { createInsightsHubService } from './insights-hub-service.js';
import { createMbp } from './mbp.js';
import { createOAuth2 } from './oauth2.js';

/** The platforms being started, by name: a creator may wait for another's (agents verify Insights Hub tokens). */
interface Started {
  insightsHub: Promise<InsightsHubPlatform>;
}

const CREATORS = {
  insightsHub: (context: SandboxContext) => createInsightsHub(context),
  agents: (context: SandboxContext, started: Started) => createInsightsHubAgents(context, async (token) => (await started.insightsHub).verifyToken(token)),
  insightsHubService: async (context: SandboxContext, started: Started) => createInsightsHubService(context, await started.insightsHub),
  ciscoEi: (context: SandboxContext) => createCiscoEi(context),
  dataTrails: (context: SandboxContext) => createDataTrails(context),
  mbp: (context: SandboxContext) => createMbp(context),
  oauth2: (context: SandboxContext) => createOAuth2(context),
};

export type SandboxPlatforms = { [Name in keyof typeof CREATORS]: Awaited<ReturnType<(typeof CREATORS)[Name]>> };

/** Starts every platform (key generation runs in parallel) and returns them by name. */
export async function createPlatforms(context: SandboxContext): Promise<SandboxPlatforms> {
  const started = {} as Record<string, Promise<Platform>>;
  for (const [name, create] of Object.entries(CREATORS)) {
    started[name] = (create as (context: SandboxContext, started: Started) => Promise<Platform>)(context, started as unknown as Started);
  }
  const entries = await Promise.all(Object.entries(started).map(async ([name, platform]) => [name, await platform] as const));
  return Object.fromEntries(entries) as unknown as SandboxPlatforms;
}
