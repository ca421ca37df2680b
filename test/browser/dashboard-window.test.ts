/**
 * The dashboard's window from a link's hash parameters (web/src/routing/analytics-window.ts): pure,
 * no browser needed; here for the DOM types the dashboard's modules are checked with.
 */
import { windowFromParams } from '../../web/src/routing/analytics-window';

const linked = (query: string) => windowFromParams(new URLSearchParams(query));

describe("a dashboard link's window", () => {
  test('when a hand-written link has "+01:00" offsets (read as spaces in a query), then they are the offsets', () => {
    expect(
      linked('window=custom&from=2024-09-01T10:00:00+01:00&to=2024-09-02T10:00:00+05:30'),
    ).toEqual({
      window: {
        kind: 'custom',
        from: '2024-09-01T10:00:00+01:00',
        to: '2024-09-02T10:00:00+05:30',
      },
      problem: null,
    });
  });

  test('when a hand-written link has short offsets ("+05", "+0530", "-08"), then they are the same offsets, written out', () => {
    expect(
      linked('window=custom&from=2024-09-01T10:00:00+05&to=2024-09-02T10:00:00%2B0530'),
    ).toEqual({
      window: {
        kind: 'custom',
        from: '2024-09-01T10:00:00+05:00',
        to: '2024-09-02T10:00:00+05:30',
      },
      problem: null,
    });
    expect(
      linked('window=custom&from=2024-09-01T10:00:00-08&to=2024-09-02T10:00:00Z').window,
    ).toEqual({
      kind: 'custom',
      from: '2024-09-01T10:00:00-08:00',
      to: '2024-09-02T10:00:00Z',
    });
  });

  test('when a custom window spans more than a month and an hour (745 hours), then the link says so and shows the last 24 hours', () => {
    const { window, problem } = linked(
      'window=custom&from=2024-08-01T00:00:00Z&to=2024-09-01T01:00:01Z',
    );
    expect(window).toEqual({ kind: 'last', hours: 24 });
    expect(problem).toBe(
      "The link's window could not be shown: its custom window spans more than 745 hours. Showing the last 24 hours instead.",
    );
    // October in Berlin: 31 days and the hour the clocks go back.
    expect(linked('window=custom&from=2024-09-30T22:00:00Z&to=2024-10-31T23:00:00Z').problem).toBe(
      null,
    );
  });

  test('when a hand-written link gives dates without a time (the engine refuses them), then the link says so and shows the last 24 hours', () => {
    const { window, problem } = linked('window=custom&from=2026-11-01&to=2026-11-02');
    expect(window).toEqual({ kind: 'last', hours: 24 });
    expect(problem).toBe(
      `The link's window could not be shown: "2026-11-01" in its custom window is not a date and time with a zone offset (e.g. 2024-03-20T10:00:00Z). Showing the last 24 hours instead.`,
    );
    expect(
      linked('window=custom&from=2026-11-01T00:00:00.5-03:00&to=2026-11-02T00:00:00Z').problem,
    ).toBe(null);
  });
});
