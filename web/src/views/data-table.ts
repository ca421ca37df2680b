import { h, keepScrollLeft, type Child } from '../dom/h';

export interface Column<Row> {
  header: string;
  /** Right-aligned figures line up by their decimals. */
  numeric?: boolean;
  cell(row: Row): Child | Child[];
}

/** Ids up to this long show whole; a longer one is cut in its middle (CSS `.id-head`). */
const ID_WHOLE = 16;
/** What a cut id keeps after its ellipsis: where one fleet's ids differ (`…-00042`, `…-01:2`). */
const ID_TAIL = 6;

/**
 * A device or charge point id as the tables show it. One of up to 64 characters held its column
 * 600 px wide and pushed the figures off screen: longer than ID_WHOLE characters, it is cut in the
 * middle (`V-LLLLL…-00042`). The whole id stays its text (what is selected and copied,
 * what a search finds) and its title; as a link it is also the link's name, which the cut would
 * otherwise read with a space in it.
 */
export function deviceId(id: string, link?: { href: string; focusKey?: string }): HTMLElement {
  const cut = id.length > ID_WHOLE;
  const text = cut
    ? [h('span', { class: 'id-head' }, id.slice(0, -ID_TAIL)), id.slice(-ID_TAIL)]
    : id;
  const title = cut ? id : undefined;
  if (!link) return h('span', { class: 'id', attrs: { title } }, text);
  return h(
    'a',
    {
      class: 'id',
      attrs: {
        href: link.href,
        'data-focus-key': link.focusKey,
        title,
        'aria-label': title,
      },
    },
    text,
  );
}

/** Meter ids, a line broken between them, never inside one (`SIM-CP-⏎1:1`). */
export const idList = (ids: string[]): Child[] =>
  ids.flatMap((id, i) => [i > 0 ? ', ' : null, deviceId(id)]);

/** Rows a table can update in place: each one's key, and what its cells show. */
export interface RowIdentity<Row> {
  /** Unique among the rows (a vehicle's id). */
  key(row: Row): string;
  /**
   * Everything the row's cells and attributes show, as text: a row whose key and version are
   * unchanged keeps its elements (and with them focus, selection and layout).
   */
  version(row: Row): string;
}

export interface DataTableOptions<Row> {
  caption: string;
  columns: Column<Row>[];
  rows: Row[];
  /** Attributes of a row (`class`, `data-*`, `aria-current`). */
  rowAttrs?: (row: Row) => Record<string, string | boolean | undefined>;
}

/**
 * A semantic table: caption, column headers, and the first column as row headers (kept in view
 * while the table scrolls sideways). Wrapped in a focusable region so a keyboard can scroll it
 * sideways on a narrow screen; a hint says when it is wider than the screen.
 */
export function dataTable<Row>(options: DataTableOptions<Row>): HTMLElement {
  return new DataTable(options).element;
}

/**
 * A dataTable whose rows can be given again (a refresh, a column's figures arriving later): only
 * the rows added or changed are built, the others keep their elements. Rebuilt whole, a table of
 * 1,000 rows held the page for most of a second each time.
 */
export class DataTable<Row> {
  readonly element: HTMLElement;
  private readonly caption = h('caption');
  private readonly body = h('tbody');
  private readonly region: HTMLElement;
  private shown = new Map<string, { tr: HTMLTableRowElement; version: string }>();

  constructor(private readonly options: DataTableOptions<Row> & { identity?: RowIdentity<Row> }) {
    const { columns } = options;
    const table = h(
      'table',
      null,
      this.caption,
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          columns.map((c) => h('th', { class: cellClass(c), attrs: { scope: 'col' } }, c.header)),
        ),
      ),
      this.body,
    );
    this.region = h(
      'div',
      { class: 'table-scroll', attrs: { tabindex: 0, role: 'region' } },
      table,
    );
    overflow.observe(this.region);
    keepScrollLeft(this.region);
    this.element = h(
      'div',
      { class: 'table-block' },
      h(
        'p',
        { class: 'table-scroll-hint', attrs: { 'aria-hidden': 'true' } },
        'Scroll sideways for more columns →',
      ),
      this.region,
    );
    this.update(options.rows, options.caption);
  }

  /** Shows `rows` in their order under `caption`, building only the rows new or changed. */
  update(rows: Row[], caption: string): void {
    // Text set again, even the same, would have the whole table laid out anew.
    if (this.caption.textContent !== caption) this.caption.textContent = caption;
    this.region.setAttribute('aria-label', caption);
    this.region.setAttribute('data-scroll-key', caption);
    const { identity } = this.options;
    if (!identity) {
      this.body.replaceChildren(...rows.map((row) => this.row(row)));
      return;
    }
    const next = new Map<string, { tr: HTMLTableRowElement; version: string }>();
    for (const row of rows) {
      const key = identity.key(row);
      const version = identity.version(row);
      const old = this.shown.get(key);
      if (old && old.version === version) {
        next.set(key, old);
        continue;
      }
      const tr = this.row(row);
      // In the old one's place, so that the order pass below moves nothing that stays put.
      if (old) replaceKeepingFocus(old.tr, tr);
      next.set(key, { tr, version });
    }
    for (const [key, { tr }] of this.shown) if (!next.has(key)) tr.remove();
    let place = this.body.firstElementChild;
    for (const { tr } of next.values()) {
      if (tr === place) place = place.nextElementSibling;
      else this.body.insertBefore(tr, place);
    }
    this.shown = next;
  }

  private row(row: Row): HTMLTableRowElement {
    const { columns, rowAttrs } = this.options;
    return h(
      'tr',
      { attrs: rowAttrs?.(row) },
      columns.map((c, i) =>
        i === 0
          ? h('th', { class: cellClass(c), attrs: { scope: 'row' } }, c.cell(row))
          : h('td', { class: cellClass(c) }, c.cell(row)),
      ),
    );
  }
}

const cellClass = <Row>(c: Column<Row>) => (c.numeric ? 'num' : undefined);

/** A row replaced under the keyboard's focus gives it to the same control in its successor. */
function replaceKeepingFocus(old: HTMLElement, replacement: HTMLElement): void {
  const focused = document.activeElement;
  const key = focused && old.contains(focused) ? focused.getAttribute('data-focus-key') : null;
  old.replaceWith(replacement);
  if (key === null) return;
  replacement
    .querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(key)}"]`)
    ?.focus({ preventScroll: true });
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
