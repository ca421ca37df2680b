import type { Query } from '../api/api-client';

/** The time window a view reports on: the last 24 hours / 7 days, or a custom span. */
export type AnalyticsWindow =
  { kind: 'last'; hours: 24 | 168 } | { kind: 'custom'; from: string; to: string };

export const DEFAULT_WINDOW: AnalyticsWindow = { kind: 'last', hours: 24 };
/** The engine's limit for one analytics window. */
export const MAX_CUSTOM_WINDOW_HOURS = 31 * 24;

const HOUR_MS = 3_600_000;

/** Hash parameters: window=24h|7d, or window=custom&from=ISO&to=ISO. */
export function windowFromParams(params: URLSearchParams): AnalyticsWindow {
  const name = params.get('window');
  if (name === '7d') return { kind: 'last', hours: 168 };
  if (name === 'custom') {
    const from = params.get('from');
    const to = params.get('to');
    if (from && to && Date.parse(from) < Date.parse(to)) return { kind: 'custom', from, to };
  }
  return DEFAULT_WINDOW;
}

export function windowToParams(window: AnalyticsWindow, params: URLSearchParams): void {
  if (window.kind === 'last') {
    params.set('window', window.hours === 168 ? '7d' : '24h');
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
 * Explicit bounds for per-vehicle reports. A "last N hours" window ends at the last whole hour,
 * as the fleet report's does, so a vehicle's figures equal its line in the fleet.
 */
export function windowBounds(
  window: AnalyticsWindow,
  now = Date.now(),
): { from: string; to: string } {
  if (window.kind === 'custom') return { from: window.from, to: window.to };
  const to = Math.floor(now / HOUR_MS) * HOUR_MS;
  return {
    from: new Date(to - window.hours * HOUR_MS).toISOString(),
    to: new Date(to).toISOString(),
  };
}

export function describeWindow(window: AnalyticsWindow): string {
  if (window.kind === 'custom') return 'Custom window';
  return window.hours === 168 ? 'Last 7 days' : 'Last 24 hours';
}
