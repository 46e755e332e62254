import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { ErrorCode } from '../core/errors.js';
import { checkRecordId } from '../core/record-store.js';
import { BoardingConfigurationError, importAgentKey, parseBoardingConfiguration } from '../platforms/insights-hub-agent/protocol.js';
import { isSdkStateFile } from '../platforms/insights-hub-agent/adoption.js';
import type { SecurityProfile } from '../platforms/insights-hub-agent/state.js';
import { acceptsJsonOnly } from './admin-route.js';
import type { AdminRequest, AdminResponse, NodeAPI } from './node-red.js';

/**
 * The agent config dialog's check of what the user pastes (a boarding
 * configuration, an SDK state file, a private key), by the runtime's own
 * parsers, so that the dialog says what the runtime will say. An admin route:
 * only editor users who may change agent config nodes may call it (with
 * adminAuth), it takes JSON only, and it neither keeps nor logs the text. The
 * answer names a problem (a key of the dialog's message catalog, which words
 * it in the user's language) or what the dialog shows; never a secret (the
 * IAT, a client secret, a registration access token, the key).
 */
export const AGENT_CHECK_ROUTE = '/iiot-auth/insights-hub-agent/check';

export type BoardingCheck =
  | { problem: 'boarding-required' | 'boarding-json' | 'boarding-content' | 'boarding-url' | 'boarding-client-id' }
  | { problem: 'boarding-field'; field: string }
  | {
      /** An SDK state file's registration is adopted; its IAT is never used. */
      kind: 'boarding-configuration' | 'sdk-state-file';
      clientId: string;
      tenant: string;
      baseUrl: string;
      /** The profiles it allows; [] when it names none. */
      profiles: SecurityProfile[];
      /** When the IAT expires, epoch ms; absent when unknown. */
      expiresAt?: number;
      /** 'expired': a boarding configuration whose IAT has expired (onboarding with it fails). */
      warnings: 'expired'[];
    };

export type KeyCheck =
  | { kind: 'generated' }
  | { kind: 'rsa'; bits: number }
  | { problem: 'key-public' | 'key-encrypted' | 'key-type' | 'key-format' | 'key-lines' }
  | { problem: 'key-size'; bits: number };

export function checkBoardingConfiguration(text: string, now: number = Date.now()): BoardingCheck {
  let boarding: ReturnType<typeof parseBoardingConfiguration>;
  try {
    boarding = parseBoardingConfiguration(text);
  } catch (err) {
    if (!(err instanceof BoardingConfigurationError)) throw err;
    return err.problem === 'field' ? { problem: 'boarding-field', field: err.field ?? '' } : { problem: `boarding-${err.problem}` };
  }
  // The client id names the agent's stored state: the store refuses anything else.
  try {
    checkRecordId(boarding.clientId, 'client id');
  } catch {
    return { problem: 'boarding-client-id' };
  }
  const sdk = isSdkStateFile(JSON.parse(text)); // valid: parseBoardingConfiguration read it
  const expired = !sdk && boarding.expiresAt !== undefined && boarding.expiresAt <= now;
  return {
    kind: sdk ? 'sdk-state-file' : 'boarding-configuration',
    clientId: boarding.clientId,
    tenant: boarding.tenant,
    baseUrl: boarding.baseUrl,
    profiles: boarding.profiles,
    ...(boarding.expiresAt !== undefined ? { expiresAt: boarding.expiresAt } : {}),
    warnings: expired ? ['expired'] : [],
  };
}

/** Whether RSA_3072 takes the key (the runtime's importAgentKey decides), and if not, why. Empty: one is generated. */
export function checkAgentKey(pem: string): KeyCheck {
  const text = pem.trim();
  if (!text) return { kind: 'generated' };
  try {
    importAgentKey(text);
    return { kind: 'rsa', bits: 3072 };
  } catch {
    return whyKeyRefused(text);
  }
}

/** Explains a refusal of importAgentKey in the terms the dialog has words for. */
function whyKeyRefused(text: string): KeyCheck {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED/.test(text)) return { problem: 'key-encrypted' };
  let key: KeyObject | undefined;
  try {
    key = createPrivateKey(text);
  } catch {
    key = undefined;
  }
  if (key) {
    const bits = key.asymmetricKeyDetails?.modulusLength;
    return key.asymmetricKeyType === 'rsa' && bits ? { problem: 'key-size', bits } : { problem: 'key-type' };
  }
  try {
    createPublicKey(text);
    return { problem: 'key-public' }; // a public key or a certificate
  } catch {
    // not one either
  }
  if (/-----BEGIN OPENSSH PRIVATE KEY-----/.test(text)) return { problem: 'key-type' };
  // Pasted through a one-line field: a PEM needs its line breaks.
  if (!text.includes('\n') && /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return { problem: 'key-lines' };
  return { problem: 'key-format' };
}

export function registerAgentCheckRoute(RED: NodeAPI): void {
  RED.httpAdmin.post(AGENT_CHECK_ROUTE, RED.auth.needsPermission('iiot-insights-hub-agent.write'), (req: AdminRequest, res: AdminResponse) => {
    if (!acceptsJsonOnly(req, res, 'the agent configuration check')) return;
    const body = req.body ?? {};
    const { boardingConfig, privateKey } = body;
    const given = [boardingConfig, privateKey].filter((v) => v !== undefined);
    if (given.length === 0 || given.some((v) => typeof v !== 'string')) {
      res.status(400).json({ code: ErrorCode.INPUT_INVALID, message: 'send boardingConfig or privateKey (or both) as text' });
      return;
    }
    try {
      res.json({
        ...(typeof boardingConfig === 'string' ? { boardingConfig: checkBoardingConfiguration(boardingConfig) } : {}),
        ...(typeof privateKey === 'string' ? { privateKey: checkAgentKey(privateKey) } : {}),
      });
    } catch {
      // Never the error itself: it might quote what was pasted.
      res.status(500).json({ code: ErrorCode.INTERNAL_ERROR, message: 'the check failed' });
    }
  });
}
