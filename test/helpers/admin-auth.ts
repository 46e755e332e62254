import assert from 'node:assert/strict';
import path from 'node:path';

/**
 * Node-RED's adminAuth for the tests of routes behind its permissions: an
 * `admin` with every permission and a `viewer` who may only read, and how a
 * client such as `node-red-admin` logs in as either. The passwords are
 * hashed with the bcryptjs of the Node-RED under test (NODE_RED_PATH in the
 * Node-RED 5 and lowest-version phases), as adminAuth wants.
 */
export interface AdminUsers {
  /** The `adminAuth` setting for startNodeRed. */
  settings: { type: 'credentials'; users: Array<{ username: string; password: string; permissions: string }> };
  /** Logs in over `<base>/auth/token` and returns the bearer token; `*` for the admin, `read` for the viewer. */
  token(base: string, who: 'admin' | 'viewer'): Promise<string>;
}

export function adminUsers(adminPassword: string, viewerPassword: string): AdminUsers {
  const nodeRed = path.dirname(require.resolve(process.env.NODE_RED_PATH ? path.join(process.env.NODE_RED_PATH, 'package.json') : 'node-red/package.json'));
  const bcrypt = require(require.resolve('bcryptjs', { paths: [nodeRed] })) as { hashSync(s: string, rounds: number): string };
  const password = { admin: adminPassword, viewer: viewerPassword };
  return {
    settings: {
      type: 'credentials',
      users: [
        { username: 'admin', password: bcrypt.hashSync(adminPassword, 4), permissions: '*' },
        { username: 'viewer', password: bcrypt.hashSync(viewerPassword, 4), permissions: 'read' },
      ],
    },
    async token(base, who) {
      const res = await fetch(`${base}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_id: 'node-red-admin',
          grant_type: 'password',
          scope: who === 'admin' ? '*' : 'read',
          username: who,
          password: password[who],
        }),
      });
      assert.equal(res.status, 200, `log-in of ${who}`);
      return ((await res.json()) as { access_token: string }).access_token;
    },
  };
}
