import { ErrorCode, IiotAuthError } from '../core/errors.js';

/**
 * Resource indicators (RFC 8707): the APIs a token is asked for, each an
 * absolute URI without a fragment (RFC 8707 2), sent as one `resource`
 * parameter each. The config node holds them separated by spaces or lines
 * (a URI has neither).
 */
export function readResources(text: string): string[] {
  const resources = text.split(/\s+/).filter(Boolean);
  for (const resource of resources) {
    const shown = `"${resource.slice(0, 80)}"`;
    let url: URL;
    try {
      url = new URL(resource);
    } catch {
      throw new IiotAuthError(
        ErrorCode.CONFIG_INVALID,
        `the resource ${shown} is not an absolute URI: write the API's identifier as the authorization server knows it, e.g. https://api.example.com/ (several separated by spaces)`,
      );
    }
    if (resource.includes('#') || url.hash) {
      throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `the resource ${shown} has a fragment (#…), which RFC 8707 forbids: remove it`);
    }
  }
  return [...new Set(resources)];
}
