import { ApiError, type ApiClient } from '../api/api-client';
import { CHARGE_POINTS_MAX_PAGE, fetchChargePoint, fetchChargePoints } from '../api/endpoints';
import type { ChargePoint, Connector, OpenTransaction } from '../api/types';
import { h, replaceContent } from '../dom/h';
import { formatDateTimeSeconds } from '../format/dates';
import { formatCount, formatKwh } from '../format/numbers';
import { formatRoute, vehicleRoute, type Route } from '../routing/routes';
import { dataTable, deviceId } from './data-table';
import { errorNotice, loadingNotice, notice, staleNotice } from './notices';
import { timeText } from './time-text';
import type { LoadOutcome, View } from './view';

const missing = (text: string) => h('span', { class: 'missing' }, text);

const connectedText = (cp: ChargePoint) =>
  cp.connected ? 'Connected' : h('strong', { class: 'badge badge-alert' }, 'Disconnected');

const transactionText = (tx: OpenTransaction | null) =>
  tx
    ? [
        `transaction ${tx.transactionId}`,
        ...(tx.vehicleId
          ? [' (', deviceId(tx.vehicleId, { href: formatRoute(vehicleRoute(tx.vehicleId)) }), ')']
          : [` (idTag ${tx.idTag})`]),
        ', since ',
        timeText(tx.startedAt),
      ]
    : 'none';

function connectorsTable(cp: ChargePoint): HTMLElement {
  if (cp.connectors.length === 0)
    return notice('empty', 'This charge point reported no connectors');
  return dataTable<Connector>({
    // A disconnected charge point's connectors are what it said last, not what they are now.
    caption: cp.connected
      ? `Connectors of ${cp.id}`
      : `Connectors of ${cp.id}, as it last reported them before it disconnected`,
    columns: [
      { header: 'Connector', cell: (c) => String(c.connectorId) },
      {
        header: cp.connected ? 'Status' : 'Last reported status',
        cell: (c) =>
          c.status === null
            ? missing('unknown')
            : [c.status, ...(c.statusAt ? [', since ', timeText(c.statusAt)] : [])],
      },
      {
        header: 'Error code',
        cell: (c) => [
          c.errorCode && c.errorCode !== 'NoError'
            ? h('strong', null, c.errorCode)
            : (c.errorCode ?? missing('none')),
          // What the charge point added: its manufacturer's code and its own words.
          ...(c.vendorErrorCode ? [` (${c.vendorErrorCode})`] : []),
          ...(c.info ? [`: ${c.info}`] : []),
        ],
      },
      { header: 'Meter', cell: (c) => deviceId(c.meterId) },
      {
        header: 'Register',
        numeric: true,
        cell: (c) => (c.registerKwh === null ? missing('no reading') : formatKwh(c.registerKwh)),
      },
      { header: 'Open transaction', cell: (c) => transactionText(c.openTransaction) },
    ],
    rows: cp.connectors,
  });
}

/** Shared loading, error and stale handling of the two charge point screens. */
abstract class ChargePointScreen implements View {
  readonly root: HTMLElement;
  protected readonly content = h('div');
  private readonly feedback = h('div', { class: 'feedback' });
  private shownAt: Date | null = null;
  /** Bumped by each load (and on destroy): an answer of an older one is not drawn. */
  protected generation = 0;

  constructor(
    title: string,
    private readonly what: string,
    breadcrumb: HTMLElement | null,
  ) {
    this.root = h(
      'section',
      { class: 'view', attrs: { 'aria-labelledby': 'view-title' } },
      breadcrumb,
      h('h1', { attrs: { id: 'view-title', tabindex: -1 } }, title),
      this.feedback,
      this.content,
    );
    this.content.append(loadingNotice(what));
  }

  /** Whether the route shows this same screen (then it reloads in place). */
  protected abstract shows(route: Route): boolean;
  protected abstract fetchAndRender(): Promise<() => void>;

  update(route: Route): Promise<LoadOutcome> | null {
    return this.shows(route) ? this.load() : null;
  }

  async load(): Promise<LoadOutcome> {
    const generation = ++this.generation;
    try {
      const render = await this.fetchAndRender();
      if (generation !== this.generation) return 'superseded';
      this.feedback.replaceChildren();
      render();
      this.shownAt = new Date();
      return 'ok';
    } catch (err) {
      if (generation !== this.generation) return 'superseded';
      if (this.shownAt)
        replaceContent(
          this.feedback,
          staleNotice(this.what, err, formatDateTimeSeconds(this.shownAt)),
        );
      else replaceContent(this.content, errorNotice(this.what, err));
      return 'failed';
    }
  }

  destroy(): void {
    this.generation += 1;
  }
}

const notInstalled = () =>
  notice(
    'empty',
    'Charge points are not available on this engine',
    'It has no OCPP charge point endpoints (GET /v1/charge-points answers "No route").',
  );

/** Charge points the list first shows, and each "Show more" adds. */
export const CHARGE_POINTS_PAGE = 500;

/** Charge points in the engine's order, and where the engine's next page starts (null: none). */
interface ChargePointRows {
  rows: ChargePoint[];
  next: string | null;
}

/**
 * Up to `count` charge points after `cursor` (none: from the first) in the engine's order, in
 * pages of at most the engine's limit. When the last page came back full, a one-row look ahead
 * tells whether the engine has more, so the list never says "more" when there is none.
 * null: this engine has no charge points endpoint.
 */
async function fetchChargePointRows(
  api: ApiClient,
  count: number,
  cursor?: string,
): Promise<ChargePointRows | null> {
  const rows: ChargePoint[] = [];
  let next = cursor;
  do {
    const page = await fetchChargePoints(api, {
      limit: Math.min(CHARGE_POINTS_MAX_PAGE, count - rows.length),
      cursor: next,
    });
    if (!page) return null;
    rows.push(...page.chargePoints);
    next = page.nextCursor ?? undefined;
  } while (next !== undefined && rows.length < count);
  if (next !== undefined) {
    const ahead = await fetchChargePoints(api, { limit: 1, cursor: next });
    if (!ahead) return null;
    if (ahead.nextCursor === null) next = undefined;
  }
  return { rows, next: next ?? null };
}

const chargePointsText = (n: number) =>
  `${formatCount(n)} ${n === 1 ? 'charge point' : 'charge points'}`;

/**
 * Every OCPP charge point with its connection and connectors (GET /v1/charge-points), a page at a
 * time: the first CHARGE_POINTS_PAGE, then "Show more" adds the engine's next page after the
 * last one shown. The rows stay in the engine's order (by id as text: CP-10 before CP-2), never
 * sorted here: each page continues where the one before ended, which a re-sorted list would not.
 */
export class ChargePointsView extends ChargePointScreen {
  /** What is on screen, and where the engine's next page starts (null: all are shown). */
  private shown: ChargePointRows = { rows: [], next: null };
  /**
   * How many the user asked to see: a refresh reloads that many from the first, so it never
   * drops the pages "Show more" added (nor the one it is loading).
   */
  private wanted = CHARGE_POINTS_PAGE;
  private loadingMore = false;
  private moreButton: HTMLButtonElement | null = null;
  private readonly moreFeedback = h('div', { class: 'feedback' });

  constructor(private readonly api: ApiClient) {
    super('Charge points', 'the charge points', null);
  }

  protected shows(route: Route): boolean {
    return route.view === 'charge-points';
  }

  protected async fetchAndRender(): Promise<() => void> {
    const loaded = await fetchChargePointRows(this.api, this.wanted);
    return () => {
      if (!loaded) return replaceContent(this.content, notInstalled());
      this.shown = loaded;
      this.render();
    };
  }

  /** The engine's next page after the last row shown, added below it. */
  private async showMore(): Promise<void> {
    const after = this.shown.next;
    if (this.loadingMore || after === null) return;
    // A refresh under way (it loads fewer) is not drawn; one that starts now loads these too.
    const generation = ++this.generation;
    this.wanted = this.shown.rows.length + CHARGE_POINTS_PAGE;
    this.setLoadingMore(true);
    try {
      const more = await fetchChargePointRows(this.api, CHARGE_POINTS_PAGE, after);
      if (generation !== this.generation) return;
      if (!more) return replaceContent(this.content, notInstalled());
      const firstNew = more.rows[0];
      this.shown = { rows: [...this.shown.rows, ...more.rows], next: more.next };
      this.moreFeedback.replaceChildren();
      this.render();
      // The button is gone once all are shown: the reader goes on at the first row it added.
      if (firstNew && !this.content.contains(document.activeElement))
        this.content
          .querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(`cp:${firstNew.id}`)}"]`)
          ?.focus();
    } catch (err) {
      if (generation !== this.generation) return;
      this.wanted = Math.max(CHARGE_POINTS_PAGE, this.shown.rows.length);
      replaceContent(this.moreFeedback, errorNotice('more charge points', err));
    } finally {
      this.setLoadingMore(false);
    }
  }

  private setLoadingMore(loading: boolean): void {
    this.loadingMore = loading;
    if (!this.moreButton) return;
    // aria-disabled, not disabled: a disabled button would lose the keyboard's focus.
    this.moreButton.setAttribute('aria-disabled', String(loading));
    this.moreButton.textContent = loading
      ? 'Loading more charge points…'
      : `Show the next ${formatCount(CHARGE_POINTS_PAGE)}`;
  }

  private render(): void {
    const { rows, next } = this.shown;
    this.moreButton = null;
    if (rows.length === 0 && next === null)
      return replaceContent(this.content, notice('empty', 'No charge point has connected yet'));
    const count = chargePointsText(rows.length);
    let footer: HTMLElement | null = null;
    if (next !== null) {
      this.moreButton = h(
        'button',
        {
          class: 'button-secondary',
          attrs: { type: 'button', 'data-focus-key': 'show-more-charge-points' },
          on: { click: () => void this.showMore() },
        },
        '',
      );
      this.setLoadingMore(this.loadingMore);
      footer = h(
        'div',
        { class: 'list-more' },
        h(
          'p',
          { attrs: { role: 'status' } },
          `Showing the first ${count} by id; the engine has more.`,
        ),
        this.moreButton,
        this.moreFeedback,
      );
    } else if (this.wanted > CHARGE_POINTS_PAGE) {
      // After "Show more": says the list is now complete.
      footer = h(
        'div',
        { class: 'list-more' },
        h('p', { attrs: { role: 'status' } }, `All ${count} shown.`),
      );
    }
    replaceContent(
      this.content,
      dataTable<ChargePoint>({
        caption: next === null ? count : `First ${count} by id, of more`,
        columns: [
          {
            header: 'Charge point',
            cell: (cp) =>
              deviceId(cp.id, {
                href: formatRoute({ view: 'charge-point', chargePointId: cp.id }),
                focusKey: `cp:${cp.id}`,
              }),
          },
          { header: 'Connection', cell: connectedText },
          {
            header: 'Last boot',
            cell: (cp) => (cp.lastBootAt ? timeText(cp.lastBootAt) : missing('never booted')),
          },
          {
            header: 'Connectors',
            numeric: true,
            cell: (cp) => formatCount(cp.connectors.length),
          },
          {
            header: 'Connector status',
            cell: (cp) => {
              const statuses = cp.connectors
                .map((c) => `${c.connectorId}: ${c.status ?? 'unknown'}`)
                .join(', ');
              if (!statuses) return missing('none');
              return cp.connected ? statuses : [statuses, ' ', missing('(last reported)')];
            },
          },
        ],
        rows,
      }),
      footer,
    );
  }
}

/** One charge point and its connectors (GET /v1/charge-points/:id). */
export class ChargePointView extends ChargePointScreen {
  constructor(
    private readonly chargePointId: string,
    private readonly api: ApiClient,
  ) {
    super(
      `Charge point ${chargePointId}`,
      'the charge point',
      h(
        'nav',
        { class: 'breadcrumb', attrs: { 'aria-label': 'Breadcrumb' } },
        h('a', { attrs: { href: formatRoute({ view: 'charge-points' }) } }, '← Charge points'),
      ),
    );
  }

  protected shows(route: Route): boolean {
    return route.view === 'charge-point' && route.chargePointId === this.chargePointId;
  }

  protected async fetchAndRender(): Promise<() => void> {
    let cp: ChargePoint | null = null;
    let routeMissing = false;
    try {
      cp = await fetchChargePoint(this.api, this.chargePointId);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      routeMissing = err.routeMissing;
    }
    return () => {
      if (routeMissing) return replaceContent(this.content, notInstalled());
      if (!cp)
        return replaceContent(
          this.content,
          notice('empty', `No charge point ${this.chargePointId} is known to the engine`),
        );
      const row = (label: string, value: Node | string) =>
        h('div', null, h('dt', null, label), h('dd', null, value));
      const since = cp.connected ? cp.connectedAt : cp.lastSeenAt;
      replaceContent(
        this.content,
        h(
          'dl',
          { class: 'figures' },
          row('Connection', connectedText(cp)),
          row(
            cp.connected ? 'Connected since' : 'Last seen',
            since ? timeText(since) : missing('unknown'),
          ),
          row('Last boot', cp.lastBootAt ? timeText(cp.lastBootAt) : missing('never booted')),
          row('Model', [cp.vendor, cp.model].filter(Boolean).join(' ') || missing('not reported')),
          row('Firmware', cp.firmwareVersion ?? missing('not reported')),
        ),
        connectorsTable(cp),
      );
    };
  }
}
