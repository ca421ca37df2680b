import { Type, type TProperties, type TString } from '@sinclair/typebox';

/** Rows a keyset-paged list answers without `limit`. */
export const DEFAULT_PAGE_SIZE = 100;

/**
 * A list's query, paged in the order of its key: `cursor` is the last key of the page before;
 * `more` adds the list's own filters.
 */
export const pageQuery = <P extends TProperties = Record<never, never>>(
  key: TString,
  more: P = {} as P,
) =>
  Type.Object({
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: `default ${DEFAULT_PAGE_SIZE}` }),
    ),
    cursor: Type.Optional({
      ...key,
      description:
        'the nextCursor of the previous page (its last key), or any key to list what comes after it',
    }),
    ...more,
  });

/** A full page may have more after it: its last key is the next cursor. */
export const nextCursorOf = <T>(
  page: T[],
  limit: number,
  keyOf: (row: T) => string,
): string | null => (page.length === limit ? keyOf(page[page.length - 1]) : null);
