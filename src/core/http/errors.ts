import { errors as undiciErrors } from 'undici';
import { describeUrl, ErrorCode, IiotAuthError } from '../errors.js';

/**
 * Every error the HTTP layer raises, in one place: undici's and the
 * socket's errors mapped to our codes, and the layer's own refusals. Messages
 * name the URL without its query (describeUrl) and never a header or body.
 */

/** Sending through a client (or connection) that was closed: written once for the package. */
export function closedError(): IiotAuthError {
  return new IiotAuthError(ErrorCode.CLOSED, 'the connection was closed (the config node was redeployed or stopped)');
}

/** undici's or the socket's error for a request to `url`, as one of our codes. */
export function toHttpError(err: unknown, url: URL | string, timeoutMs: number): IiotAuthError {
  if (err instanceof IiotAuthError) return err;
  const where = describeUrl(url);
  const code = errorCode(err);
  const timeout =
    err instanceof undiciErrors.ConnectTimeoutError ||
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError ||
    (err as Error | undefined)?.name === 'TimeoutError';
  if (timeout) {
    return new IiotAuthError(
      ErrorCode.HTTP_TIMEOUT,
      `${where} did not answer within ${timeoutMs} ms: check that the server is up and reachable, or raise the timeout`,
      { cause: err },
    );
  }
  if (code === 'ECONNREFUSED') {
    return new IiotAuthError(ErrorCode.HTTP_CONNECTION_REFUSED, `${where} refused the connection: check the URL and port, and that the server is running`, {
      cause: err,
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new IiotAuthError(ErrorCode.HTTP_HOST_NOT_FOUND, `the host of ${where} was not found: check the URL and this machine's DNS`, { cause: err });
  }
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ALTNAME|EPROTO/.test(code)) {
    return new IiotAuthError(
      ErrorCode.HTTP_TLS_ERROR,
      `the TLS certificate of ${where} could not be verified (${code}): add the CA in a TLS config node, or check the host name`,
      { cause: err },
    );
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return new IiotAuthError(
      ErrorCode.HTTP_CONNECTION_RESET,
      `${where} closed the connection before answering: the server or a proxy in between dropped it; try again later`,
      { cause: err },
    );
  }
  const detail = code ?? (err as Error | undefined)?.name ?? 'unknown error';
  return new IiotAuthError(ErrorCode.HTTP_FAILED, `the request to ${where} failed (${detail})`, { cause: err });
}

/** The most specific code in the cause chain: undici wraps the socket's error. */
function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_CONNECT' && code !== 'UND_ERR_REQ_ABORTED') return code;
    current = (current as { cause?: unknown }).cause;
  }
  const top = (err as { code?: unknown } | undefined)?.code;
  return typeof top === 'string' ? top : undefined;
}

export function responseTooLarge(url: URL, maxBytes: number): IiotAuthError {
  return new IiotAuthError(
    ErrorCode.HTTP_RESPONSE_TOO_LARGE,
    `the response of ${describeUrl(url)} is larger than ${maxBytes} bytes: ask for less (paging, filters) or raise the limit`,
  );
}

export function tooManyRedirects(url: string, maxRedirects: number): IiotAuthError {
  return new IiotAuthError(ErrorCode.HTTP_TOO_MANY_REDIRECTS, `${describeUrl(url)} redirected more than ${maxRedirects} times: check the configured URL`);
}

/** The error for a redirect of a request that carries a secret: names the status and the other origin, never the secret. */
export function redirectRefused(endpoint: { what: string; advice?: string }, url: string, status: number, location: string | undefined): IiotAuthError {
  let target = '';
  if (location) {
    try {
      const next = new URL(location, url);
      target = next.origin === new URL(url).origin ? ` to ${describeUrl(next)}` : ` to another origin, ${next.origin}`;
    } catch {
      target = ' to an invalid address';
    }
  }
  return new IiotAuthError(
    ErrorCode.TOKEN_ENDPOINT_ERROR,
    `${endpoint.what} at ${describeUrl(url)} answered ${status} (a redirect${target}); a request that carries credentials never follows a redirect, so nothing was sent there: ${endpoint.advice ?? 'check the configured URL points at the platform itself'}`,
    { statusCode: status },
  );
}

/** The caller's deadline ran out while waiting to retry a 429/503: its last answer would be stale now. */
export function waitOutlastsTimeout(url: string, waitMs: number, status: number): IiotAuthError {
  return new IiotAuthError(
    ErrorCode.HTTP_TIMEOUT,
    `${describeUrl(url)} asked to wait ${Math.ceil(waitMs / 1000)} s (${status}), longer than the message's timeout allows: raise the timeout, or try later`,
  );
}
