import { AppError } from '../../src/errors';
import { MAX_WINDOW_HOURS, parseWindow } from '../../src/reports/window-params';

const NOW = Date.parse('2024-03-20T10:17:42.500Z');
const parse = (query: { from?: string; to?: string; hours?: number }, alignS = 30) =>
  parseWindow(query, { now: NOW, alignS });
const iso = (w: { from: Date; to: Date }) => [w.from.toISOString(), w.to.toISOString()];

/** The parameter a refused window names, from its 400. */
function refused(query: { from?: string; to?: string; hours?: number }): string {
  try {
    parse(query);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).statusCode).toBe(400);
    expect((err as AppError).code).toBe('invalid_parameter');
    return (err as AppError).details[0].path;
  }
  throw new Error('the window was accepted');
}

describe('parseWindow', () => {
  test('when nothing is given, then it is the 24 hours ending now, aligned down to alignS', () => {
    expect(iso(parse({}))).toEqual(['2024-03-19T10:17:30.000Z', '2024-03-20T10:17:30.000Z']);
    expect(iso(parse({}, 3600))).toEqual(['2024-03-19T10:00:00.000Z', '2024-03-20T10:00:00.000Z']);
  });

  test('when a bound falls between two milliseconds, then it is taken up to the next (a reading at .000 is before .0001)', () => {
    expect(
      iso(parse({ from: '2024-03-01T10:04:59.9999Z', to: '2024-03-01T10:05:00.0001Z' })),
    ).toEqual(['2024-03-01T10:05:00.000Z', '2024-03-01T10:05:00.001Z']);
    expect(
      iso(parse({ from: '2024-03-01T10:05:00.0001Z', to: '2024-03-01T10:06:00.123000Z' })),
    ).toEqual(['2024-03-01T10:05:00.001Z', '2024-03-01T10:06:00.123Z']);
  });

  test('when hours is given alone, then the window ends now and spans that many hours', () => {
    expect(iso(parse({ hours: 2 }))).toEqual([
      '2024-03-20T08:17:30.000Z',
      '2024-03-20T10:17:30.000Z',
    ]);
  });

  test('when from is given with hours, then the window starts at from', () => {
    expect(iso(parse({ from: '2024-03-01T00:00:00Z', hours: 3 }))).toEqual([
      '2024-03-01T00:00:00.000Z',
      '2024-03-01T03:00:00.000Z',
    ]);
  });

  test('when from is given alone, then a report spans the default hours, a session list runs until now', () => {
    expect(iso(parse({ from: '2024-03-12T00:00:00Z' }))).toEqual([
      '2024-03-12T00:00:00.000Z',
      '2024-03-13T00:00:00.000Z',
    ]);
    const untilNow = parseWindow(
      { from: '2024-03-12T00:00:00Z' },
      { now: NOW, alignS: 30, defaultHours: 168, maxWindowHours: 92 * 24, fromAloneEndsNow: true },
    );
    expect(iso(untilNow)).toEqual(['2024-03-12T00:00:00.000Z', '2024-03-20T10:17:30.000Z']);
  });

  test('when a session list is given a from since the aligned end (what came since a last look), then it runs until now itself; a from ahead of now is refused', () => {
    const sinceLastLook = (from: string) =>
      parseWindow({ from }, { now: NOW, alignS: 60, fromAloneEndsNow: true });
    expect(iso(sinceLastLook('2024-03-20T10:17:10Z'))).toEqual([
      '2024-03-20T10:17:10.000Z',
      '2024-03-20T10:17:42.500Z',
    ]);
    // Before the aligned end, the window ends there, shared by every such request's cache.
    expect(iso(sinceLastLook('2024-03-20T10:16:10Z'))).toEqual([
      '2024-03-20T10:16:10.000Z',
      '2024-03-20T10:17:00.000Z',
    ]);
    expect(() => sinceLastLook('2024-03-20T10:17:42.500Z')).toThrow(
      "from must be earlier than the window's end, 2024-03-20T10:17:42.500Z (now: to is not given)",
    );
  });

  test('when to is given alone, then the window is the 24 hours before it', () => {
    expect(iso(parse({ to: '2024-03-02T00:00:00+01:00' }))).toEqual([
      '2024-02-29T23:00:00.000Z',
      '2024-03-01T23:00:00.000Z',
    ]);
  });

  test('when a bound has an hour-only offset (+05), then it is the instant it names', () => {
    expect(iso(parse({ from: '2024-03-01T05:00:00+05', to: '2024-03-01 02:00:00-02' }))).toEqual([
      '2024-03-01T00:00:00.000Z',
      '2024-03-01T04:00:00.000Z',
    ]);
  });

  test('when from and to are given, then they are the window exactly (any zone offset)', () => {
    expect(
      iso(parse({ from: '2024-03-01T00:00:00.250Z', to: '2024-03-01T02:00:00-02:00' })),
    ).toEqual(['2024-03-01T00:00:00.250Z', '2024-03-01T04:00:00.000Z']);
  });

  test('when hours comes with both from and to, then 400 names hours', () => {
    expect(refused({ from: '2024-03-01T00:00:00Z', to: '2024-03-02T00:00:00Z', hours: 2 })).toBe(
      '/hours',
    );
  });

  test('when from is not before to, then 400 names from', () => {
    expect(refused({ from: '2024-03-02T00:00:00Z', to: '2024-03-02T00:00:00Z' })).toBe('/from');
    expect(refused({ from: '2024-03-03T00:00:00Z', to: '2024-03-02T00:00:00Z' })).toBe('/from');
  });

  test('when the window is longer than the cap, then 400 names to; exactly the cap is accepted', () => {
    const from = Date.parse('2024-01-01T00:00:00Z');
    const at = (hours: number) => new Date(from + hours * 3600_000).toISOString();
    expect(refused({ from: at(0), to: at(MAX_WINDOW_HOURS + 1) })).toBe('/to');
    expect(iso(parse({ from: at(0), to: at(MAX_WINDOW_HOURS) }))[1]).toBe(at(MAX_WINDOW_HOURS));
  });

  test('when the window is a calendar month in a time zone that leaves summer time in it (October in Berlin: 745 hours), then it is accepted', () => {
    const october = { from: '2023-10-01T00:00:00+02:00', to: '2023-11-01T00:00:00+01:00' };
    expect(iso(parse(october))).toEqual(['2023-09-30T22:00:00.000Z', '2023-10-31T23:00:00.000Z']);
  });
});
