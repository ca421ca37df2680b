import { badRequest } from '../errors';

const HOUR_MS = 3_600_000;
export const MAX_WINDOW_HOURS = 31 * 24;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

export interface AnalyticsWindow {
  from: Date;
  to: Date;
}

const bad = (param: string, message: string) =>
  badRequest('invalid_parameter', `${param} ${message}`, [{ path: `/${param}`, message }]);

function parseInstant(param: string, value: string): Date {
  const ms = RFC3339.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms))
    throw bad(param, 'must be an RFC 3339 date-time with a zone offset, e.g. 2024-03-20T10:00:00Z');
  return new Date(ms);
}

/**
 * The window [from, to) of an analytics request: `from` and `to`, or `hours` (1-168) with at most
 * one of them; by default the last 24 hours. A window ending "now" ends at the last multiple of
 * `alignS` seconds, so repeated requests share one cached answer (the response states the bounds).
 */
export function parseWindow(
  query: Record<string, unknown>,
  { now, alignS, allowed }: { now: number; alignS: number; allowed: string[] },
): AnalyticsWindow {
  for (const key of Object.keys(query)) {
    if (!allowed.includes(key))
      throw bad(key, `is not a known parameter (use ${allowed.join(', ')})`);
  }
  const text = (param: string): string | undefined => {
    const value = query[param];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '')
      throw bad(param, 'must be given once, with a value');
    return value;
  };
  const fromText = text('from');
  const toText = text('to');
  const hoursText = text('hours');

  let hours: number | undefined;
  if (hoursText !== undefined) {
    hours = Number(hoursText);
    if (!/^\d+$/.test(hoursText) || hours < 1 || hours > 168)
      throw bad('hours', 'must be a whole number from 1 to 168');
    if (fromText !== undefined && toText !== undefined) {
      throw bad(
        'hours',
        'cannot be combined with both from and to; give from and to, or hours with one of them',
      );
    }
  }
  const alignMs = Math.max(1, alignS) * 1000;
  const alignedNow = new Date(Math.floor(now / alignMs) * alignMs);
  const span = (hours ?? 24) * HOUR_MS;

  let from: Date;
  let to: Date;
  if (fromText !== undefined && toText !== undefined) {
    from = parseInstant('from', fromText);
    to = parseInstant('to', toText);
  } else if (fromText !== undefined) {
    from = parseInstant('from', fromText);
    to = new Date(from.getTime() + span);
  } else {
    to = toText !== undefined ? parseInstant('to', toText) : alignedNow;
    from = new Date(to.getTime() - span);
  }
  if (from >= to) throw bad('from', 'must be earlier than to');
  if (to.getTime() - from.getTime() > MAX_WINDOW_HOURS * HOUR_MS) {
    throw bad('to', `must be at most ${MAX_WINDOW_HOURS} hours after from`);
  }
  return { from, to };
}
