import assert from 'node:assert/strict';
import { decideAdoption, isSdkStateFile, parseAgentConfiguration, SDK_KEY_ID, type SdkAdoption } from '../../src/platforms/insights-hub-agent/adoption.js';
import { importAgentKey } from '../../src/platforms/insights-hub-agent/protocol.js';
import { boardingConfigId, STATE_FORMAT, type AgentRegistration, type AgentState } from '../../src/platforms/insights-hub-agent/state.js';
import { rsa3072Pkcs1 } from '../compat/sdk-run.js';

/** Reading the SDK's state file and deciding which copy of a registration is newer, without a network. */
const BASE = 'https://southgate.example';
const IAT = 'iat.of.sdk';
const content = { baseUrl: BASE, iat: IAT, clientCredentialProfile: ['SHARED_SECRET'], clientId: 'agent-1', tenant: 'tenant1' };
const response = (rat: string, expiresAt: number, extra: Record<string, unknown> = {}) => ({
  client_id: 'agent-1',
  client_secret: `secret-${rat}`,
  client_secret_expires_at: expiresAt,
  grant_types: ['client_credentials'],
  registration_access_token: rat,
  registration_client_uri: `${BASE}/api/agentmanagement/v3/register/agent-1`,
  token_endpoint_auth_method: 'client_secret_jwt',
  ...extra,
});

function registration(rat: string, expiresAt: number): AgentRegistration {
  return {
    clientId: 'agent-1',
    clientSecret: `secret-${rat}`,
    clientSecretExpiresAt: expiresAt,
    registrationAccessToken: rat,
    registrationClientUri: `${BASE}/api/agentmanagement/v3/register/agent-1`,
    tokenEndpointAuthMethod: 'client_secret_jwt',
    receivedAt: new Date().toISOString(),
    confirmed: true,
  };
}

function state(registrations: AgentRegistration[], extra: Partial<AgentState> = {}): AgentState {
  return {
    format: STATE_FORMAT,
    clientId: 'agent-1',
    tenant: 'tenant1',
    baseUrl: BASE,
    profile: 'SHARED_SECRET',
    boardingConfigId: boardingConfigId(IAT),
    registrations,
    updatedAt: '',
    ...extra,
  };
}

describe('the SDK state file (adoption)', () => {
  it('tells an SDK state file from a boarding configuration', () => {
    assert.equal(isSdkStateFile({ content, expiration: '2030-01-01T00:00:00.000Z' }), false);
    assert.equal(isSdkStateFile({ content, response: response('r1', 100) }), true);
    const boardingOnly = parseAgentConfiguration(JSON.stringify({ content }), 'SHARED_SECRET', undefined);
    assert.equal(boardingOnly.adoption, undefined);
  });

  it("reads response and recovery newest first, without repeats, with the SDK's kid for RSA keys", () => {
    const text = JSON.stringify({
      content,
      response: response('r3', 300),
      recovery: [response('r1', 100), response('r2', 200), response('r3', 300)],
      mappings: [],
      dataSourceConfiguration: {},
    });
    const { adoption } = parseAgentConfiguration(text, 'SHARED_SECRET', undefined);
    assert.deepEqual(
      adoption!.registrations.map((r) => r.registrationAccessToken),
      ['r3', 'r2', 'r1'],
    );
    assert.equal(adoption!.registrations[0]!.clientSecret, 'secret-r3');
    const key = importAgentKey(rsa3072Pkcs1());
    const rsa = parseAgentConfiguration(
      JSON.stringify({ content: { ...content, clientCredentialProfile: ['RSA_3072'] }, response: { ...response('r1', 100), client_secret: undefined } }),
      'RSA_3072',
      key,
    );
    assert.equal(rsa.adoption!.registrations[0]!.keyId, SDK_KEY_ID);
    assert.equal(rsa.adoption!.registrations[0]!.privateKey, key.privateKey);
  });

  it('errors name the field and never quote a secret', () => {
    const bad = JSON.stringify({ content, response: { ...response('rat-secret-value', 100), client_secret_expires_at: 'soon' } });
    assert.throws(
      () => parseAgentConfiguration(bad, 'SHARED_SECRET', undefined),
      (err: Error) =>
        /numeric "response"\.client_secret_expires_at/.test(err.message) && !err.message.includes('rat-secret-value') && !err.message.includes(IAT),
    );
    assert.throws(
      () => parseAgentConfiguration(JSON.stringify({ content, response: response('r', 1) }), 'RSA_3072', undefined),
      /is for SHARED_SECRET, but the node is set to RSA_3072/,
    );
  });

  describe('which copy is newer (client_secret_expires_at; the same RAT is the same registration)', () => {
    const adoption = (rat: string, expiresAt: number): SdkAdoption => ({ clientId: 'agent-1', registrations: [registration(rat, expiresAt)] });
    const other = boardingConfigId('another IAT');

    it('an empty store, or one without registrations or offboarded: adopt', () => {
      assert.equal(decideAdoption(undefined, adoption('r1', 100), boardingConfigId(IAT)), 'adopt');
      assert.equal(decideAdoption(state([]), adoption('r1', 100), boardingConfigId(IAT)), 'adopt');
      assert.equal(decideAdoption(state([registration('x', 900)], { offboardedAt: '2026-01-01' }), adoption('r1', 100), boardingConfigId(IAT)), 'adopt');
    });

    it("the store knows the file's registration, or holds its own later rotations: use the store", () => {
      assert.equal(decideAdoption(state([registration('r1', 100)], { adoptedAt: 'x' }), adoption('r1', 100), boardingConfigId(IAT)), 'use-store');
      assert.equal(
        decideAdoption(state([registration('ours', 500), registration('r1', 100)], { adoptedAt: 'x' }), adoption('r1', 100), boardingConfigId(IAT)),
        'use-store',
      );
      // Rotated more often than registrations are kept: the file's has aged out, the store's are later.
      assert.equal(decideAdoption(state([registration('ours6', 900)], { adoptedAt: 'x' }), adoption('r1', 100), boardingConfigId(IAT)), 'use-store');
    });

    it('the file holds a later registration than the store (the SDK rotated after an adoption that never rotated): adopt', () => {
      const file: SdkAdoption = { clientId: 'agent-1', registrations: [registration('r2', 200), registration('r1', 100)] };
      assert.equal(decideAdoption(state([registration('r1', 100)], { adoptedAt: 'x' }), file, boardingConfigId(IAT)), 'adopt');
      assert.equal(decideAdoption(state([registration('old', 50)], { boardingConfigId: other }), adoption('r1', 100), boardingConfigId(IAT)), 'adopt');
    });

    it("the store holds a newer (or as new) registration that is not the file's: refuse", () => {
      assert.equal(decideAdoption(state([registration('ours', 500)], { boardingConfigId: other }), adoption('r1', 100), boardingConfigId(IAT)), 'refuse');
      assert.equal(decideAdoption(state([registration('ours', 100)], { boardingConfigId: other }), adoption('r1', 100), boardingConfigId(IAT)), 'refuse');
      assert.equal(
        decideAdoption(state([registration('ours', 500)]), adoption('r1', 100), boardingConfigId(IAT)),
        'refuse',
        'never adopted here: not ours to overwrite',
      );
    });
  });
});
