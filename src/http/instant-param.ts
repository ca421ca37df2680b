import { invalidParameter } from '../errors';
import { instantMs, REAL_INSTANT_RULE } from '../schema/primitives';

/** Digits of a fraction of a second beyond the millisecond, if any is not zero. */
const BELOW_MILLISECOND = /\.\d{3}\d*[1-9]/;

/**
 * A query's instant (a report window's bound, a list's filter) to the millisecond readings are
 * kept to. Date.parse drops what is below it; a bound between two milliseconds is taken up to the
 * next, for `from` and `to` alike: a reading at 10:05:00.000 is before from=10:05:00.0001 and
 * before to=10:05:00.0001, so out and in.
 */
export function instantParam(param: string, value: string): Date {
  const ms = instantMs(value);
  if (!Number.isFinite(ms)) throw invalidParameter(param, REAL_INSTANT_RULE);
  return new Date(BELOW_MILLISECOND.test(value) ? ms + 1 : ms);
}
