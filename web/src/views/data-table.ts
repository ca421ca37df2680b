import { h, keepScrollLeft, type Child } from '../dom/h';

export interface Column<Row> {
  header: string;
  /** Right-aligned figures line up by their decimals. */
  numeric?: boolean;
  cell(row: Row): Child | Child[];
}

/** Meter ids, a line broken between them, never inside one (`SIM-CP-⏎1:1`). */
export const idList = (ids: string[]): Child[] =>
  ids.flatMap((id, i) => [i > 0 ? ', ' : null, h('span', { class: 'id' }, id)]);

/**
 * A semantic table: caption, column headers, and the first column as row headers. Wrapped in a
 * focusable region so a keyboard can scroll it sideways on a narrow screen; a hint says when it
 * is wider than the screen.
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
  const region = h(
    'div',
    {
      class: 'table-scroll',
      attrs: { tabindex: 0, role: 'region', 'aria-label': caption, 'data-scroll-key': caption },
    },
    table,
  );
  overflow.observe(region);
  keepScrollLeft(region);
  return h(
    'div',
    { class: 'table-block' },
    h(
      'p',
      { class: 'table-scroll-hint', attrs: { 'aria-hidden': 'true' } },
      'Scroll sideways for more columns →',
    ),
    region,
  );
}

/**
 * Marks a table's region that is wider than the screen (`data-overflowing`), so the page shows a
 * hint above it and shaded edges: its scrollbar is at the bottom, often below the fold. One
 * observer for every table; a table taken off the page is no longer watched.
 */
const overflow = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    if (!target.isConnected) {
      overflow.unobserve(target);
      continue;
    }
    const wider = target.scrollWidth > target.clientWidth + 1;
    target.parentElement?.toggleAttribute('data-overflowing', wider);
  }
});
