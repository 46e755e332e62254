// Fixed demo credentials, so the demo, the docs and `npm run sandbox` can show them.
// The secrets are long and distinctive so that tests can search logs and
// outputs for them. They work against the sandbox only.

import { oauth2Demo } from './oauth2.js';
import type { DemoCredentials } from './types.js';

export function demoCredentials(): DemoCredentials {
  const ciscoEiTenants = [
    { id: '7d3c1f0e-5a2b-4c8d-9e6f-1a2b3c4d5e01', name: 'SANDBOX LIVE TENANT' },
    { id: '7d3c1f0e-5a2b-4c8d-9e6f-1a2b3c4d5e02', name: 'SandboxDemoTenant' },
  ];
  return {
    insightsHubApp: {
      clientId: 'sandbox-iiotdemo-app',
      clientSecret: 'ihsecret-Sandbox-7Qp2Lx9Vw4Rt',
      appName: 'iiotdemo',
      appVersion: '1.0.0',
      // Different on purpose, so that a client swapping the two is caught.
      hostTenant: 'sandboxhost',
      userTenant: 'sandboxuser',
    },
    insightsHubService: {
      clientId: 'sandboxhost-svc-demo',
      clientSecret: 'svcsecret-Sandbox-3Hn8Kd2Pq5Xz',
      tenant: 'sandboxhost',
    },
    ciscoEi: {
      username: 'apiuser@sandbox.example',
      password: 'eipass-Sandbox-WileyCoyote21',
      tenantId: ciscoEiTenants[0].id,
      tenants: ciscoEiTenants,
    },
    dataTrails: {
      clientId: 'b5d1c8e2-3f4a-4b6c-9d7e-0a1b2c3d4e5f',
      clientSecret: 'dtsecret-Sandbox-5f3c9a71e2b84d06',
    },
    mbp: {
      username: 'mbpdemo',
      password: 'mbppass-Sandbox-Stuttgart42',
      firstName: 'Ada',
      lastName: 'Lovelace',
    },
    oauth2: oauth2Demo(),
  };
}
