import { SESSIONS_SQL, bindSessionSql } from '../../src/sessions/session-sql';

test("when the fleet's sessions are computed for more vehicles than a call takes arguments (300,000), then the statement is bound, from the earliest start less the gap", () => {
  const starts = Array.from({ length: 300_000 }, (_, i) => new Date(Date.UTC(2024, 4, 10) + i));
  const { bindings } = bindSessionSql(SESSIONS_SQL, {
    VEHICLES: starts.map((_, i) => `V-${i}`),
    FROMS: starts,
    TO: new Date(Date.UTC(2024, 4, 11)),
    GAP: 600,
    KEPT: null,
    MODE: 'interval',
  });
  expect(bindings).toContainEqual(new Date(Date.UTC(2024, 4, 10) - 600_000));
});
