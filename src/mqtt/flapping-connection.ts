/**
 * Tells when a connection keeps dropping: `dropped()` records a drop and answers how many fell
 * within the last `windowMs` once they reach `drops`, at most once per window (else null), so a
 * flapping connection is reported, not logged at every reconnect.
 */
export function createFlappingDetector({
  drops,
  windowMs,
  now = Date.now,
}: {
  drops: number;
  windowMs: number;
  now?: () => number;
}): { dropped(): number | null } {
  let recent: number[] = [];
  let reportedAt = -Infinity;
  return {
    dropped() {
      const at = now();
      recent = [...recent.filter((t) => at - t < windowMs), at];
      if (recent.length < drops || at - reportedAt < windowMs) return null;
      reportedAt = at;
      return recent.length;
    },
  };
}
