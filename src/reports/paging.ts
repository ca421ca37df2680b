import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { invalidParameter } from '../errors';
import { HOUR_MS } from '../time-units';
import { isAcceptableWindow, type AnalyticsWindow } from './window-params';

/**
 * What a paged report is: its window and its filters. A cursor carries it, so every page of one
 * listing is of one report: a window "ending now" that moved on between two pages (the hour
 * turned) still pages through the report the first page began, and a cursor is not taken for a
 * page of another report.
 */
export type ReportScope = { from: string; to: string } & Record<string, string | number | boolean>;

export interface Page {
  offset: number;
  /** The page size the listing was asked with (checked where used: see limitOfPage). */
  limit?: unknown;
  scope: ReportScope;
}

const NOT_A_CURSOR = 'must be a nextCursor from a previous page';

/** Rows of a paged report without `limit`, and the most a page may ask for. */
export const REPORT_PAGE_DEFAULT = 100;
export const REPORT_PAGE_MAX = 10_000;

/** A page's position in its report, and the page size, opaque to clients. */
export function encodeCursor(offset: number, scope: ReportScope, limit: number): string {
  return Buffer.from(JSON.stringify({ offset, limit, scope })).toString('base64url');
}

export function decodeCursor(cursor: string): Page {
  let page: Partial<Page>;
  try {
    page = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<Page>;
  } catch {
    throw invalidParameter('cursor', NOT_A_CURSOR);
  }
  const { offset, limit, scope } = page ?? {};
  const valid =
    typeof offset === 'number' &&
    Number.isSafeInteger(offset) &&
    offset >= 0 &&
    typeof scope === 'object' &&
    scope !== null &&
    !Number.isNaN(Date.parse(String(scope.from))) &&
    !Number.isNaN(Date.parse(String(scope.to)));
  if (!valid) throw invalidParameter('cursor', NOT_A_CURSOR);
  return { offset, limit, scope };
}

const otherReport = (scope: ReportScope, what: string) =>
  invalidParameter(
    'cursor',
    `is a page of the report from ${scope.from} to ${scope.to}${describeFilters(scope)}, not of one with ${what}; ask the first page again without a cursor`,
  );

function describeFilters({ from: _from, to: _to, ...filters }: ReportScope): string {
  const named = Object.entries(filters).map(([name, value]) => `${name}=${String(value)}`);
  return named.length > 0 ? ` (${named.join(', ')})` : '';
}

/**
 * The window of a page: its cursor's. Bounds the query names (`from`, `to`) must be the cursor's;
 * a window the query gives relative to now (`hours`, or none) is the cursor's as it was, of the
 * same length.
 */
export function windowOfPage(
  page: Page,
  query: { from?: string; to?: string; hours?: number },
  asked: () => AnalyticsWindow,
  maxWindowHours: number,
): AnalyticsWindow {
  const pinned = { from: new Date(page.scope.from), to: new Date(page.scope.to) };
  // A cursor is the client's to send: one it made up is held to what any window must be.
  if (!isAcceptableWindow(pinned, maxWindowHours)) throw invalidParameter('cursor', NOT_A_CURSOR);
  const given = asked();
  // Only the bounds the query names: one it leaves to "now" has moved on since the first page.
  if (query.from !== undefined && given.from.getTime() !== pinned.from.getTime()) {
    throw otherReport(page.scope, `from=${given.from.toISOString()}`);
  }
  if (query.to !== undefined && given.to.getTime() !== pinned.to.getTime()) {
    throw otherReport(page.scope, `to=${given.to.toISOString()}`);
  }
  if (
    query.hours !== undefined &&
    query.hours * HOUR_MS !== pinned.to.getTime() - pinned.from.getTime()
  ) {
    throw otherReport(page.scope, `hours=${query.hours}`);
  }
  return pinned;
}

/**
 * A filter of a page: its cursor's, held to the query parameter's own schema (a cursor is the
 * client's to send); the query may name it again, not change it.
 */
export function filterOfPage<S extends TSchema>(
  page: Page,
  name: string,
  asked: Static<S> | undefined,
  schema: S,
): Static<S> {
  const pinned = page.scope[name];
  if (!Value.Check(schema, pinned)) throw invalidParameter('cursor', NOT_A_CURSOR);
  if (asked !== undefined && asked !== pinned) {
    throw otherReport(page.scope, `${name}=${String(asked)}`);
  }
  return pinned as Static<S>;
}

/**
 * How many items a page holds: as the query asks, else as many as the cursor's listing was asked
 * for (a client paging with limit=10 need not repeat it), held to the parameter's schema, else
 * `byDefault`.
 */
export function limitOfPage(
  page: Page | null,
  asked: number | undefined,
  schema: TSchema,
  byDefault: number,
): number {
  if (asked !== undefined) return asked;
  if (page?.limit === undefined) return byDefault;
  if (!Value.Check(schema, page.limit)) throw invalidParameter('cursor', NOT_A_CURSOR);
  return page.limit as number;
}
