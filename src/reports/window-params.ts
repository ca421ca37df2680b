import { Type } from '@sinclair/typebox';
import { invalidParameter } from '../errors';
import { Timestamp } from '../schema/primitives';
import { instantParam } from '../http/instant-param';
import { MIN_TIMESTAMP_MS } from '../telemetry/validation';
import { HOUR_MS } from '../time-units';

export const DEFAULT_HOURS = 24;
export const MAX_HOURS_PARAM = 168;
/**
 * The hour a time zone leaving summer time adds to a day: a calendar month or quarter in local
 * time may be that much longer than its days.
 */
export const DST_HOUR = 1;
/**
 * The longest window a report reads (a month in local time: 31 days and the hour leaving summer
 * time adds, as October in Europe): bounds the work one request can ask for.
 */
export const MAX_WINDOW_HOURS = 31 * 24 + DST_HOUR;

/** The query parameters that choose a report's window, as the routes declare them. */
export const WindowQuery = {
  from: Type.Optional({ ...Timestamp, description: 'window start (inclusive)' }),
  to: Type.Optional({ ...Timestamp, description: 'window end (exclusive)' }),
  hours: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_HOURS_PARAM,
      description: `window length, with at most one of from/to; default ${DEFAULT_HOURS}. A window (from and to) may span at most ${MAX_WINDOW_HOURS} hours.`,
    }),
  ),
};

const hoursText = (hours: number) => `${hours} hour${hours === 1 ? '' : 's'}`;

/** The latest a window may end (and a session start): its bounds stay four-digit years. */
export const LATEST_WINDOW_END_MS = Date.UTC(9999, 0, 1);

export interface AnalyticsWindow {
  from: Date;
  to: Date;
}

/**
 * Which bounds the query named: a bound it did not name was derived from the other (and `hours`),
 * which is then the one to blame.
 */
interface WindowGiven {
  fromGiven: boolean;
  toGiven: boolean;
  /** The window ends now (`to` left out, and not derived from `from` and `hours`). */
  toIsNow: boolean;
}

/**
 * The first rule a window breaks, as the parameter to blame and what it must be; null: none. No
 * reading is older than the first bound, and a window past year 9999 has no RFC 3339 bounds to
 * answer with.
 */
function windowProblem(
  { from, to }: AnalyticsWindow,
  maxWindowHours: number,
  end: WindowGiven = { fromGiven: true, toGiven: true, toIsNow: false },
): { param: string; message: string } | null {
  if (from.getTime() < MIN_TIMESTAMP_MS) {
    const earliest = new Date(MIN_TIMESTAMP_MS).toISOString();
    if (end.fromGiven) return { param: 'from', message: `must not be before ${earliest}` };
    // The start is `hours` before `to`: it is `to` that is too early.
    const span = to.getTime() - from.getTime();
    return {
      param: 'to',
      message: `must be at least ${new Date(MIN_TIMESTAMP_MS + span).toISOString()}: the window starts ${hoursText(span / HOUR_MS)} before it, not before ${earliest}`,
    };
  }
  if (to.getTime() > LATEST_WINDOW_END_MS) {
    return {
      param: end.toGiven ? 'to' : 'from',
      message: `must keep the window's end at most ${new Date(LATEST_WINDOW_END_MS).toISOString()}`,
    };
  }
  if (from >= to) {
    const bound = end.toIsNow
      ? `the window's end, ${to.toISOString()} (now: to is not given)`
      : 'to';
    return { param: 'from', message: `must be earlier than ${bound}` };
  }
  if (to.getTime() - from.getTime() > maxWindowHours * HOUR_MS) {
    // A window given only its start ends now: the start is what is too far back.
    return end.toIsNow
      ? { param: 'from', message: `must be at most ${maxWindowHours} hours ago` }
      : { param: 'to', message: `must be at most ${maxWindowHours} hours after from` };
  }
  return null;
}

/** Whether a window is one parseWindow could have given (for windows that come back to us). */
export const isAcceptableWindow = (window: AnalyticsWindow, maxWindowHours: number): boolean =>
  windowProblem(window, maxWindowHours) === null;

/**
 * Seconds a window ending "now" is aligned to: the cache's lifetime, so repeated requests share
 * an answer, but never more than a minute behind.
 */
export const nowAlignS = (analyticsCacheTtlS: number) => Math.min(analyticsCacheTtlS, 60);

/**
 * The window [from, to) of a report from already validated parameters: `from` and `to`, or
 * `hours` with at most one of them; by default the last 24 hours. A window ending "now" ends at
 * the last multiple of `alignS` seconds, so repeated requests share one cached answer (the
 * response states the bounds); one given a `from` later than that ends at `now` itself.
 */
export function parseWindow(
  query: { from?: string; to?: string; hours?: number },
  {
    now,
    alignS,
    defaultHours = DEFAULT_HOURS,
    maxWindowHours = MAX_WINDOW_HOURS,
    fromAloneEndsNow = false,
  }: {
    now: number;
    alignS: number;
    defaultHours?: number;
    maxWindowHours?: number;
    /** Without `hours`, a window given only its `from` runs until now (not `defaultHours` on). */
    fromAloneEndsNow?: boolean;
  },
): AnalyticsWindow {
  if (query.hours !== undefined && query.from !== undefined && query.to !== undefined) {
    throw invalidParameter(
      'hours',
      'cannot be combined with both from and to; give from and to, or hours with one of them',
    );
  }
  const alignMs = Math.max(1, alignS) * 1000;
  const alignedNow = new Date(Math.floor(now / alignMs) * alignMs);
  const span = (query.hours ?? defaultHours) * HOUR_MS;
  const fromRunsUntilNow = fromAloneEndsNow && query.hours === undefined;

  let from: Date;
  let to: Date;
  if (query.from !== undefined && query.to !== undefined) {
    from = instantParam('from', query.from);
    to = instantParam('to', query.to);
  } else if (query.from !== undefined) {
    from = instantParam('from', query.from);
    // A start since the aligned end (a client asking for what came since its last look) runs
    // until the instant itself rather than being refused as after the window's end.
    to = !fromRunsUntilNow
      ? new Date(from.getTime() + span)
      : from >= alignedNow
        ? new Date(now)
        : alignedNow;
  } else {
    to = query.to !== undefined ? instantParam('to', query.to) : alignedNow;
    from = new Date(to.getTime() - span);
  }
  const toIsNow = query.to === undefined && (query.from === undefined || fromRunsUntilNow);
  const problem = windowProblem({ from, to }, maxWindowHours, {
    fromGiven: query.from !== undefined,
    toGiven: query.to !== undefined,
    toIsNow,
  });
  if (problem) throw invalidParameter(problem.param, problem.message);
  return { from, to };
}
