import type { Query } from '../api/api-client';

/**
 * The time window a view reports on: the last 24 hours / 7 days, or a custom span. `end` pins the
 * last hours to a fleet report's end (the engine's "now" when it answered): a vehicle opened from
 * its row shows that report's window, whatever the browser's clock says.
 */
export type AnalyticsWindow =
  { kind: 'last'; hours: 24 | 168; end?: string } | { kind: 'custom'; from: string; to: string };

export const DEFAULT_WINDOW: AnalyticsWindow = { kind: 'last', hours: 24 };
/** The engine's limit for one analytics window: a month, with an hour a clock change adds. */
export const MAX_CUSTOM_WINDOW_HOURS = 31 * 24 + 1;

const HOUR_MS = 3_600_000;

/** Where a window "ending now" ends: the last whole hour, as the engine's fleet report ends it. */
export const lastWholeHour = (now: number): number => Math.floor(now / HOUR_MS) * HOUR_MS;

/**
 * What the engine takes as a window's bound (RFC 3339 date-time, as ajv-formats checks it): a
 * date alone, which Date.parse reads as midnight UTC, the engine refuses.
 */
const DATE_TIME =
  /^\d{4}-[01]\d-[0-3]\d[Tt ](?:[0-2]\d:[0-5]\d:[0-5]\d|23:59:60)(?:\.\d+)?(?:[Zz]|[+-]\d\d(?::?\d\d)?)$/;

/** A link's window, and why it is not the one the link asked for (null when it is). */
export interface LinkedWindow {
  window: AnalyticsWindow;
  problem: string | null;
}

/**
 * Hash parameters: window=24h|7d, or window=custom&from=ISO&to=ISO. A link whose window cannot be
 * shown (a typo, a date cut off) shows the default, and says so rather than pass it off as asked.
 */
export function windowFromParams(params: URLSearchParams): LinkedWindow {
  const name = params.get('window');
  if (name === null || name === '24h') return lastHours(24, params.get('end'));
  if (name === '7d') return lastHours(168, params.get('end'));
  if (name !== 'custom') return instead(`its window "${name}" is none of 24h, 7d and custom`);
  const from = withOffsetSign(params.get('from'));
  const to = withOffsetSign(params.get('to'));
  if (!from || !to) return instead(`its custom window has no "${from ? 'to' : 'from'}"`);
  const notDate = [from, to].find(
    (text) => !DATE_TIME.test(text) || Number.isNaN(Date.parse(text)),
  );
  if (notDate !== undefined) {
    return instead(
      `"${notDate}" in its custom window is not a date and time with a zone offset (e.g. 2024-03-20T10:00:00Z)`,
    );
  }
  if (Date.parse(from) >= Date.parse(to))
    return instead(`its custom window's "from" (${from}) is not before its "to" (${to})`);
  if (Date.parse(to) - Date.parse(from) > MAX_CUSTOM_WINDOW_HOURS * HOUR_MS)
    return instead(`its custom window spans more than ${MAX_CUSTOM_WINDOW_HOURS} hours`);
  return { window: { kind: 'custom', from, to }, problem: null };
}

/**
 * A link written by hand carries an offset's "+" as it is (`+01:00`), which a query reads as a
 * space: an instant ending in a space and an offset had a "+" there. Its offset is written out as
 * `±HH:MM` (RFC 3339 also has `+05` and `+0500`, which the browser's Date.parse does not all read).
 */
const withOffsetSign = (text: string | null) =>
  text?.replace(
    // After the seconds: a date's own "-01" is no offset.
    /(:\d{2}(?:\.\d+)?)([ +-])(\d{2})(?::?(\d{2}))?$/,
    (_, seconds: string, sign: string, hours: string, minutes = '00') =>
      `${seconds}${sign === ' ' ? '+' : sign}${hours}:${minutes}`,
  ) ?? null;

/** The window, not pinned to a report's end (see AnalyticsWindow): ending now. */
export const unpinned = (window: AnalyticsWindow): AnalyticsWindow =>
  window.kind === 'last' ? { kind: 'last', hours: window.hours } : window;

/** The last hours, pinned to a report's `end` if the link names one. */
function lastHours(hours: 24 | 168, end: string | null): LinkedWindow {
  if (end === null) return { window: { kind: 'last', hours }, problem: null };
  if (!DATE_TIME.test(end) || Number.isNaN(Date.parse(end)))
    return instead(`its end "${end}" is not a date and time with a zone offset`);
  return { window: { kind: 'last', hours, end }, problem: null };
}

const instead = (why: string): LinkedWindow => ({
  window: DEFAULT_WINDOW,
  problem: `The link's window could not be shown: ${why}. Showing the ${describeWindow(DEFAULT_WINDOW).toLowerCase()} instead.`,
});

export function windowToParams(window: AnalyticsWindow, params: URLSearchParams): void {
  if (window.kind === 'last') {
    params.set('window', window.hours === 168 ? '7d' : '24h');
    if (window.end) params.set('end', window.end);
    return;
  }
  params.set('window', 'custom');
  params.set('from', window.from);
  params.set('to', window.to);
}

/** The fleet report's own query: `hours` lets the engine end the window at its last whole hour. */
export function fleetWindowQuery(window: AnalyticsWindow): Query {
  return window.kind === 'last' ? { hours: window.hours } : { from: window.from, to: window.to };
}

/**
 * Explicit bounds for per-vehicle reports. A "last N hours" window ends at its `end`, else at the
 * last whole hour of `now` (the engine's, see ApiClient.engineNow), as the fleet report's does, so
 * a vehicle's figures equal its line in the fleet.
 */
export function windowBounds(window: AnalyticsWindow, now: number): { from: string; to: string } {
  if (window.kind === 'custom') return { from: window.from, to: window.to };
  const to = window.end ? Date.parse(window.end) : lastWholeHour(now);
  return {
    from: new Date(to - window.hours * HOUR_MS).toISOString(),
    to: new Date(to).toISOString(),
  };
}

export function describeWindow(window: AnalyticsWindow): string {
  if (window.kind === 'custom') return 'Custom window';
  return window.hours === 168 ? 'Last 7 days' : 'Last 24 hours';
}
