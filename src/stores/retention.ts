/**
 * RETENTION_DAYS as one instant: history keeps whole UTC days, from the start of the day that
 * many days ago. The partition maintainer drops what is before it (history and what is derived
 * from it), and ingest refuses readings dated before it, which would be stored only to be dropped.
 */
import { DAY_MS } from '../time-units';

/** Epoch ms of the first instant kept, or null when everything is kept (RETENTION_DAYS=0). */
export function retainedFrom(nowMs: number, retentionDays: number): number | null {
  if (retentionDays <= 0) return null;
  return Math.floor((nowMs - retentionDays * DAY_MS) / DAY_MS) * DAY_MS;
}

/**
 * The earliest start a charging session may have when history is kept from `keptFrom`: a session
 * counts the readings after its start, (start, end], so one starting a millisecond before the
 * first kept instant counts a reading at that instant, as the reports do. Retention drops the
 * sessions that start before it.
 */
export const earliestSessionStart = (keptFrom: number): number => keptFrom - 1;
