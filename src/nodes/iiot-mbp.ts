import { MBP } from '../platforms/mbp.js';
import { registerPlatformConfigNode } from './config-node.js';
import type { NodeAPI } from './node-red.js';

/** Config node: an MBP user (session cookie and access-request header). Everything about it is in its platform declaration. */
export default function register(RED: NodeAPI): void {
  registerPlatformConfigNode(RED, MBP);
}
