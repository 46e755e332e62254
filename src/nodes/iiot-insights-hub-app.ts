import { INSIGHTS_HUB_APP } from '../platforms/insights-hub-app.js';
import { registerPlatformConfigNode } from './config-node.js';
import type { NodeAPI } from './node-red.js';

/** Config node: Insights Hub app credentials (Technical Token Manager). Everything about it is in its platform declaration. */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(RED, INSIGHTS_HUB_APP);
}
