// Insights Hub agents' data source configuration (docs/protocols.md, Insights Hub agents): checks a
// PUT body field by field, and reads the numeric eTags of If-Match.

import { isPlainObject } from '../http-kit.js';

export const DATA_POINT_TYPES = ['INT', 'LONG', 'DOUBLE', 'BOOLEAN', 'STRING', 'BIG_STRING', 'TIMESTAMP'] as const;

export interface DataSourceConfigurationBody {
  configurationId: string;
  dataSources: Record<string, unknown>[];
}

/**
 * `"3"`, `3` or `W/"3"` → 3. `undefined` when the header is missing,
 * NaN when it is not one numeric eTag (both answered 400 by the caller).
 */
export function parseIfMatch(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(value);
  return match ? Number(match[1]) : Number.NaN;
}

/**
 * The configuration to store (only the documented fields, in order), or the
 * message of a 400 naming the first field that is wrong.
 */
export function checkDataSourceConfiguration(body: unknown): DataSourceConfigurationBody | string {
  if (!isPlainObject(body)) return 'The request body must be a JSON object';
  if (typeof body.configurationId !== 'string' || body.configurationId.trim() === '') return 'configurationId is required (a string)';
  if (!Array.isArray(body.dataSources)) return 'dataSources is required (an array)';
  const dataPointIds = new Set<string>();
  const dataSources: Record<string, unknown>[] = [];
  for (const [sourceIndex, source] of body.dataSources.entries()) {
    const at = `dataSources[${sourceIndex}]`;
    if (!isPlainObject(source)) return `${at} must be an object`;
    const sourceProblem = requiredString(source, 'name', at) ?? optionalString(source, 'description', at) ?? customData(source, at);
    if (sourceProblem) return sourceProblem;
    if (!Array.isArray(source.dataPoints)) return `${at}.dataPoints is required (an array)`;
    const dataPoints: Record<string, unknown>[] = [];
    for (const [pointIndex, point] of source.dataPoints.entries()) {
      const pointAt = `${at}.dataPoints[${pointIndex}]`;
      if (!isPlainObject(point)) return `${pointAt} must be an object`;
      const pointProblem =
        requiredString(point, 'id', pointAt) ??
        requiredString(point, 'name', pointAt) ??
        (DATA_POINT_TYPES.includes(point.type as never) ? undefined : `${pointAt}.type must be one of ${DATA_POINT_TYPES.join(', ')}`) ??
        (typeof point.unit === 'string' ? undefined : `${pointAt}.unit is required (a string, may be empty)`) ??
        optionalString(point, 'description', pointAt) ??
        customData(point, pointAt);
      if (pointProblem) return pointProblem;
      if (dataPointIds.has(point.id as string)) return `${pointAt}.id "${String(point.id)}" is not unique in the configuration`;
      dataPointIds.add(point.id as string);
      dataPoints.push(pick(point, ['id', 'name', 'description', 'type', 'unit', 'customData']));
    }
    dataSources.push({ ...pick(source, ['name', 'description']), dataPoints, ...pick(source, ['customData']) });
  }
  return { configurationId: body.configurationId, dataSources };
}

function requiredString(object: Record<string, unknown>, field: string, at: string): string | undefined {
  return typeof object[field] === 'string' && object[field] !== '' ? undefined : `${at}.${field} is required (a non-empty string)`;
}

function optionalString(object: Record<string, unknown>, field: string, at: string): string | undefined {
  return object[field] === undefined || typeof object[field] === 'string' ? undefined : `${at}.${field} must be a string`;
}

/** Optional string tuples, at most 5 (as the API documents). */
function customData(object: Record<string, unknown>, at: string): string | undefined {
  const value = object.customData;
  if (value === undefined) return undefined;
  if (!isPlainObject(value) || !Object.values(value).every((entry) => typeof entry === 'string')) {
    return `${at}.customData must be an object of strings`;
  }
  return Object.keys(value).length <= 5 ? undefined : `${at}.customData may hold at most 5 entries`;
}

function pick(object: Record<string, unknown>, fields: string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const field of fields) if (object[field] !== undefined) picked[field] = object[field];
  return picked;
}
