import { ErrorCode } from '../core/errors.js';
import type { AdminRequest, AdminResponse } from './node-red.js';

/**
 * What the package's admin routes (the editor dialogs' helpers) share: they
 * take JSON only. A plain HTML form on another web page can send a
 * form-encoded, multipart or text/plain body to the editor's origin, never
 * application/json without the browser asking the origin first (CORS).
 */
function isJson(req: AdminRequest): boolean {
  const value = req.headers?.['content-type'];
  const type = (Array.isArray(value) ? value[0] : value) ?? '';
  return type.split(';')[0].trim().toLowerCase() === 'application/json';
}

/** Answers 415 (and returns false) unless the request is JSON; `what` names the route in the message. */
export function acceptsJsonOnly(req: AdminRequest, res: AdminResponse, what: string): boolean {
  if (isJson(req)) return true;
  res.status(415).json({ code: ErrorCode.INPUT_INVALID, message: `${what} takes JSON only: send content-type application/json` });
  return false;
}
