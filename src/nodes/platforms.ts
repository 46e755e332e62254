import type { PlatformDeclaration } from '../platforms/declaration.js';
import { PLATFORM_DECLARATIONS, type PlatformId, platformById } from '../platforms/index.js';

/**
 * The platforms an action node can pick (`platform` property), read from the
 * platform declarations: for each, the node property that references its
 * config node, that config node's type, and its label.
 */
export const PLATFORMS = Object.fromEntries(PLATFORM_DECLARATIONS.map((p) => [p.id, p])) as Readonly<Record<PlatformId, PlatformDeclaration<PlatformId>>>;

export type { PlatformId };

export function isPlatformId(value: unknown): value is PlatformId {
  return platformById(value) !== undefined;
}
