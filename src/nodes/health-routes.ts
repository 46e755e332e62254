import { ErrorCode, IiotAuthError, isIiotAuthError } from '../core/errors.js';
import { metricsText, METRICS_CONTENT_TYPE } from '../health/metrics.js';
import type { HealthRegistry, HealthSource } from '../health/registry.js';
import { acceptsJsonOnly } from './admin-route.js';
import type { AdminRequest, AdminResponse, NodeAPI } from './node-red.js';

/**
 * The health model's admin routes (docs/health.md): the entries as JSON and
 * as Prometheus metrics behind `iiot-auth.read`, and the two actions behind
 * `iiot-auth.write`, JSON only. An action joins the token request or
 * rotation already running. Errors carry a code and a redacted message.
 */
export const HEALTH_ROUTE = '/iiot-auth/health';
export const METRICS_ROUTE = '/iiot-auth/metrics';

/** Node-RED's comms topic of entry updates. */
export const HEALTH_TOPIC = 'iiot-auth/health';

export function registerHealthRoutes(RED: NodeAPI, health: HealthRegistry): void {
  const read = RED.auth.needsPermission('iiot-auth.read');
  const write = RED.auth.needsPermission('iiot-auth.write');
  RED.httpAdmin.get(HEALTH_ROUTE, read, (_req: AdminRequest, res: AdminResponse) => {
    res.json({ generatedAt: new Date().toISOString(), credentials: health.entries() });
  });
  RED.httpAdmin.get(METRICS_ROUTE, read, (_req: AdminRequest, res: AdminResponse) => {
    res.set('content-type', METRICS_CONTENT_TYPE).send(metricsText(health.entries()));
  });
  RED.httpAdmin.post(`${HEALTH_ROUTE}/:id/renew`, write, (req: AdminRequest, res: AdminResponse) => {
    if (!acceptsJsonOnly(req, res, 'renewing a token')) return;
    void act(health, req, res, 'renew');
  });
  RED.httpAdmin.post(`${HEALTH_ROUTE}/:id/rotate`, write, (req: AdminRequest, res: AdminResponse) => {
    if (!acceptsJsonOnly(req, res, 'rotating an agent')) return;
    void act(health, req, res, 'rotate');
  });
  const comms = RED.comms;
  if (comms) health.publishTo((payload) => comms.publish(HEALTH_TOPIC, payload, false));
}

async function act(health: HealthRegistry, req: AdminRequest, res: AdminResponse, action: 'renew' | 'rotate'): Promise<void> {
  const id = req.params?.id ?? '';
  const source = health.source(id);
  try {
    const run = actionOf(source, id, action);
    await run();
    res.json(health.entry(id) ?? { id, removed: true });
  } catch (err) {
    const { status, code, message } = answerOf(err, source);
    res.status(status).json({ code, message });
  }
}

function actionOf(source: HealthSource | undefined, id: string, action: 'renew' | 'rotate'): () => Promise<unknown> {
  if (!source) {
    throw new IiotAuthError(
      ErrorCode.NOT_FOUND,
      `no running config node of this package has the id "${id.slice(0, 40)}": deploy it, or reload the list (GET iiot-auth/health)`,
    );
  }
  if (source.configError) throw source.configError;
  if (action === 'rotate') {
    if (!source.agent) {
      throw new IiotAuthError(ErrorCode.INPUT_INVALID, `only an Insights Hub agent can be rotated; ${source.platformLabel} credentials are renewed instead`);
    }
    if (!source.rotate || !source.agent.summary().rotationPossible) {
      throw new IiotAuthError(
        ErrorCode.INPUT_INVALID,
        'this agent cannot be rotated now: it is not onboarded yet, or has no registration access token; renew its token first',
      );
    }
    return source.rotate;
  }
  if (!source.renew) throw new IiotAuthError(ErrorCode.CONFIG_MISSING, 'the config node is not ready: deploy again, and check the log');
  return source.renew;
}

/** The HTTP status, code and redacted message of a failed action. */
function answerOf(err: unknown, source: HealthSource | undefined): { status: number; code: string; message: string } {
  if (!isIiotAuthError(err)) return { status: 500, code: ErrorCode.INTERNAL_ERROR, message: 'the action failed unexpectedly: see the log' };
  const message = source ? source.redact(err.message) : err.message;
  const status =
    err.code === ErrorCode.NOT_FOUND
      ? 404
      : err.code === ErrorCode.INPUT_INVALID
        ? 400
        : err.code === ErrorCode.CONFIG_INVALID || err.code === ErrorCode.CONFIG_MISSING || err.code === ErrorCode.CREDENTIALS_MISSING
          ? 409
          : 502;
  return { status, code: err.code, message };
}
