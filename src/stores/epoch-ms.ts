/**
 * Timestamps go to PostgreSQL as epoch milliseconds in float8 arrays, turned into timestamptz by
 * the statement: formatting and escaping an ISO string per reading cost the flusher more than
 * the rest of building its statement. Exact: to_timestamp rounds to the microsecond, and a
 * millisecond count divided by 1000 is within a billionth of a second of its true value.
 */
export const fromEpochMs = (ms: string) => `to_timestamp(${ms} / 1000)`;
