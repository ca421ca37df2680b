import { retainedFrom } from '../stores/retention';

/**
 * What a report says of a window that starts before what history keeps (RETENTION_DAYS): one
 * warning, or none. Without it, a fleet's vehicles whose readings retention dropped read as meters
 * that sent nothing.
 */
export function retentionWarnings(from: Date, retentionDays: number, nowMs: number): string[] {
  const keptFrom = retainedFrom(nowMs, retentionDays);
  if (keptFrom === null || from.getTime() >= keptFrom) return [];
  return [
    `History is kept from ${new Date(keptFrom).toISOString()} (RETENTION_DAYS=${retentionDays}): this window starts before it, and its readings before it are dropped within the hour, if not already`,
  ];
}
