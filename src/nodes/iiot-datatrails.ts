import { DATATRAILS } from '../platforms/datatrails.js';
import { registerPlatformConfigNode } from './config-node.js';
import type { NodeAPI } from './node-red.js';

/** Config node: DataTrails client credentials (a custom integration). Everything about it is in its platform declaration. */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(RED, DATATRAILS);
}
