import { PLATFORM_DECLARATIONS, platformById } from '../platforms/index.js';
import type { PlatformDeclaration } from '../platforms/declaration.js';

/**
 * The platforms an action node can pick (`platform` property), read from the
 * platform declarations: for each, the node property that references its
 * config node, that config node's type, and its label.
 */
export const PLATFORMS: Readonly<Record<string, PlatformDeclaration>> = Object.fromEntries(PLATFORM_DECLARATIONS.map((p) => [p.id, p]));

export type PlatformId = string;

export function isPlatformId(value: unknown): value is PlatformId {
  return platformById(value) !== undefined;
}
