import { CISCO_EI } from './cisco-ei.js';
import { DATATRAILS } from './datatrails.js';
import type { PlatformDeclaration } from './declaration.js';
import { INSIGHTS_HUB_AGENT } from './insights-hub-agent/declaration.js';
import { INSIGHTS_HUB_APP } from './insights-hub-app.js';
import { INSIGHTS_HUB_SERVICE } from './insights-hub-service.js';
import { MBP } from './mbp.js';
import { OAUTH2 } from './oauth2.js';

/**
 * Every platform the package supports, in the order the editor offers them.
 * Adding a platform: its module under src/platforms/ exports a declaration,
 * and it gets one line here (docs/architecture.md).
 */
export const PLATFORM_DECLARATIONS = [INSIGHTS_HUB_APP, INSIGHTS_HUB_AGENT, INSIGHTS_HUB_SERVICE, CISCO_EI, DATATRAILS, MBP, OAUTH2] as const;

/** The action nodes' `platform` values: one per declaration. */
export type PlatformId = (typeof PLATFORM_DECLARATIONS)[number]['id'];

/** The declaration of a platform id, or undefined. */
export function platformById(id: unknown): PlatformDeclaration<PlatformId> | undefined {
  return PLATFORM_DECLARATIONS.find((p) => p.id === id);
}

/** Every platform's caller-identifying headers: a redirect to another origin drops them all. */
export const SECRET_HEADERS: readonly string[] = [...new Set(PLATFORM_DECLARATIONS.flatMap((p) => p.secretHeaders))];

/** Every platform's rate-limit headers (seconds to wait), read after Retry-After. */
export const RATE_LIMIT_HEADERS: readonly string[] = [...new Set(PLATFORM_DECLARATIONS.flatMap((p) => p.rateLimitHeaders))];
