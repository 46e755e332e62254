/**
 * A browser's part of a login at the sandbox's OAuth 2.0 server, without a
 * browser: opens the authorization URL, presses "Allow" (or "Deny") on the
 * consent page, and returns where the sandbox sends the browser back (the
 * redirect URI with code and state, or with error and state). Throws with
 * the sandbox's words when it shows an error page or redirects elsewhere.
 */
export async function consentAtSandbox(authorizationUrl: string, decision: 'allow' | 'deny' = 'allow'): Promise<string> {
  const shown = await fetch(authorizationUrl, { redirect: 'manual' });
  const html = await shown.text();
  if (shown.status !== 200) {
    throw new Error(`the sandbox's authorization endpoint answered ${shown.status} ${shown.headers.get('location') ?? ''}: ${html.slice(0, 300)}`);
  }
  const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
  const consent = /name="consent" value="([^"]+)"/.exec(html)?.[1];
  if (!action || !consent) throw new Error(`no consent form on the sandbox's page: ${html.slice(0, 300)}`);
  const answered = await fetch(new URL(action, authorizationUrl), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ consent, decision }).toString(),
  });
  const location = answered.headers.get('location');
  if (answered.status !== 303 || !location) throw new Error(`the consent form answered ${answered.status}: ${(await answered.text()).slice(0, 300)}`);
  return new URL(location, authorizationUrl).href;
}
