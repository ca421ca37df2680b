import { h, type Child } from '../dom/h';

export interface Column<Row> {
  header: string;
  /** Right-aligned figures line up by their decimals. */
  numeric?: boolean;
  cell(row: Row): Child | Child[];
}

/**
 * A semantic table: caption, column headers, and the first column as row headers. Wrapped in a
 * focusable region so a keyboard can scroll it sideways on a narrow screen.
 */
export function dataTable<Row>({
  caption,
  columns,
  rows,
  rowAttrs,
}: {
  caption: string;
  columns: Column<Row>[];
  rows: Row[];
  /** Attributes of a row (`class`, `data-*`, `aria-current`). */
  rowAttrs?: (row: Row) => Record<string, string | boolean | undefined>;
}): HTMLElement {
  const cellClass = (c: Column<Row>) => (c.numeric ? 'num' : undefined);
  const table = h(
    'table',
    null,
    h('caption', null, caption),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        columns.map((c) => h('th', { class: cellClass(c), attrs: { scope: 'col' } }, c.header)),
      ),
    ),
    h(
      'tbody',
      null,
      rows.map((row) =>
        h(
          'tr',
          { attrs: rowAttrs?.(row) },
          columns.map((c, i) =>
            i === 0
              ? h('th', { class: cellClass(c), attrs: { scope: 'row' } }, c.cell(row))
              : h('td', { class: cellClass(c) }, c.cell(row)),
          ),
        ),
      ),
    ),
  );
  return h(
    'div',
    { class: 'table-scroll', attrs: { tabindex: 0, role: 'region', 'aria-label': caption } },
    table,
  );
}
