import { COUNT_NAMES, type HealthCounts, HEALTH_STATES, type HealthEntry } from './model.js';

/**
 * The health entries in Prometheus' text exposition format 0.0.4: counters
 * since start and gauges, labelled with the platform, the config node's id
 * and its name. Label values are escaped as the format says (backslash,
 * double quote, line feed); nothing else a user typed appears.
 */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const COUNTERS: Record<keyof HealthCounts, { name: string; help: string }> = {
  tokenRequests: { name: 'iiot_auth_token_requests_total', help: 'Token requests sent since start, renewals included.' },
  renewals: { name: 'iiot_auth_token_renewals_total', help: 'Token requests made while a usable token was still held.' },
  failures: { name: 'iiot_auth_token_failures_total', help: 'Failed token requests since start.' },
  relogins: { name: 'iiot_auth_relogins_total', help: "New tokens requested after an API's 401." },
  apiRequests: { name: 'iiot_auth_api_requests_total', help: 'API requests sent through the config node since start.' },
  rateLimitWaits: { name: 'iiot_auth_rate_limit_waits_total', help: '429 answers waited out before retrying.' },
};

interface Gauge {
  name: string;
  help: string;
  value(entry: HealthEntry): number | undefined;
}

const seconds = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso) / 1000);

const GAUGES: Gauge[] = [
  { name: 'iiot_auth_token_expiry_timestamp_seconds', help: 'When the cached token expires (Unix time).', value: (e) => seconds(e.tokenExpiresAt) },
  { name: 'iiot_auth_token_renewal_timestamp_seconds', help: "When the cached token's renewal starts (Unix time).", value: (e) => seconds(e.renewAt) },
  {
    name: 'iiot_auth_backoff_end_timestamp_seconds',
    help: 'When the back-off after a failed token request ends (Unix time).',
    value: (e) => seconds(e.retryAt),
  },
  { name: 'iiot_auth_last_success_timestamp_seconds', help: 'When the last token was obtained (Unix time).', value: (e) => seconds(e.lastSuccessAt) },
  { name: 'iiot_auth_last_failure_timestamp_seconds', help: 'When the last token request failed (Unix time).', value: (e) => seconds(e.lastFailure?.at) },
  {
    name: 'iiot_auth_agent_onboarded',
    help: 'Whether the agent is onboarded (1) or not (0).',
    value: (e) => (e.agent ? (e.agent.onboarded ? 1 : 0) : undefined),
  },
  {
    name: 'iiot_auth_agent_client_secret_expiry_timestamp_seconds',
    help: "When the agent's client secret expires (Unix time).",
    value: (e) => seconds(e.agent?.clientSecretExpiresAt),
  },
  {
    name: 'iiot_auth_agent_rotation_due_timestamp_seconds',
    help: "When the agent's next rotation is due (Unix time).",
    value: (e) => seconds(e.agent?.rotateAt),
  },
  {
    name: 'iiot_auth_agent_last_rotation_timestamp_seconds',
    help: 'When the agent was last rotated (Unix time).',
    value: (e) => seconds(e.agent?.lastRotationAt),
  },
  {
    name: 'iiot_auth_agent_registrations_kept',
    help: 'Registrations the agent keeps (the newest and the ones before it).',
    value: (e) => e.agent?.registrationsKept,
  },
];

/** A label value as the exposition format wants it. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(entry: HealthEntry, extra: Record<string, string> = {}): string {
  const all = { platform: entry.platform, config: entry.id, name: entry.name, ...extra };
  return `{${Object.entries(all)
    .map(([key, value]) => `${key}="${escapeLabelValue(value)}"`)
    .join(',')}}`;
}

function number(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
}

export function metricsText(entries: readonly HealthEntry[]): string {
  const lines: string[] = [];
  for (const key of COUNT_NAMES) {
    const { name, help } = COUNTERS[key];
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const entry of entries) lines.push(`${name}${labels(entry)} ${number(entry.counts[key])}`);
  }
  lines.push("# HELP iiot_auth_credential_state The credential's state: 1 for the current one, 0 for the others.", '# TYPE iiot_auth_credential_state gauge');
  for (const entry of entries) {
    for (const state of HEALTH_STATES) lines.push(`iiot_auth_credential_state${labels(entry, { state })} ${entry.state === state ? 1 : 0}`);
  }
  for (const gauge of GAUGES) {
    const values = entries.map((entry) => [entry, gauge.value(entry)] as const).filter(([, v]) => v !== undefined && Number.isFinite(v));
    if (values.length === 0) continue;
    lines.push(`# HELP ${gauge.name} ${gauge.help}`, `# TYPE ${gauge.name} gauge`);
    for (const [entry, value] of values) lines.push(`${gauge.name}${labels(entry)} ${number(value as number)}`);
  }
  return `${lines.join('\n')}\n`;
}
