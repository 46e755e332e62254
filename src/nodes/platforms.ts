/**
 * The platforms an action node can pick (`platform` property) and, for each,
 * the node property that references its config node.
 */
export const PLATFORMS = {
  'insights-hub-app': { property: 'insightsHubApp', configType: 'iiot-insights-hub-app', label: 'Insights Hub app' },
  'insights-hub-agent': { property: 'insightsHubAgent', configType: 'iiot-insights-hub-agent', label: 'Insights Hub agent' },
  'cisco-ei': { property: 'ciscoEi', configType: 'iiot-cisco-ei', label: 'Cisco EI' },
  datatrails: { property: 'dataTrails', configType: 'iiot-datatrails', label: 'DataTrails' },
  mbp: { property: 'mbp', configType: 'iiot-mbp', label: 'MBP' },
} as const;

export type PlatformId = keyof typeof PLATFORMS;

export function isPlatformId(value: unknown): value is PlatformId {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(PLATFORMS, value);
}
