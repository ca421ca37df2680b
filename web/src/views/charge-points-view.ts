import { ApiError, type ApiClient } from '../api/api-client';
import { fetchChargePoint, fetchChargePoints } from '../api/endpoints';
import type { ChargePoint, Connector, OpenTransaction } from '../api/types';
import { h, replaceContent } from '../dom/h';
import { formatDateTimeSeconds } from '../format/dates';
import { formatCount, formatKwh } from '../format/numbers';
import { formatRoute, vehicleRoute, type Route } from '../routing/routes';
import { dataTable, idList } from './data-table';
import { errorNotice, notice, staleNotice } from './notices';
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
          ? [
              ' (',
              h('a', { attrs: { href: formatRoute(vehicleRoute(tx.vehicleId)) } }, tx.vehicleId),
              ')',
            ]
          : [` (idTag ${tx.idTag})`]),
        ', since ',
        timeText(tx.startedAt),
      ]
    : 'none';

function connectorsTable(cp: ChargePoint): HTMLElement {
  if (cp.connectors.length === 0)
    return notice('empty', 'This charge point reported no connectors');
  return dataTable<Connector>({
    caption: `Connectors of ${cp.id}`,
    columns: [
      { header: 'Connector', cell: (c) => String(c.connectorId) },
      {
        header: 'Status',
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
      { header: 'Meter', cell: (c) => idList([c.meterId]) },
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
  private generation = 0;

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
    this.content.append(notice('info', `Loading ${what}…`));
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
      if (generation !== this.generation) return 'ok';
      this.feedback.replaceChildren();
      render();
      this.shownAt = new Date();
      return 'ok';
    } catch (err) {
      if (generation !== this.generation) return 'failed';
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

/** Every OCPP charge point with its connection and connectors (GET /v1/charge-points). */
export class ChargePointsView extends ChargePointScreen {
  constructor(private readonly api: ApiClient) {
    super('Charge points', 'the charge points', null);
  }

  protected shows(route: Route): boolean {
    return route.view === 'charge-points';
  }

  protected async fetchAndRender(): Promise<() => void> {
    const list = await fetchChargePoints(this.api);
    return () => {
      if (!list) return replaceContent(this.content, notInstalled());
      if (list.chargePoints.length === 0)
        return replaceContent(this.content, notice('empty', 'No charge point has connected yet'));
      replaceContent(
        this.content,
        dataTable<ChargePoint>({
          caption: `${formatCount(list.chargePoints.length)} charge points`,
          columns: [
            {
              header: 'Charge point',
              cell: (cp) =>
                h(
                  'a',
                  {
                    attrs: {
                      href: formatRoute({ view: 'charge-point', chargePointId: cp.id }),
                      'data-focus-key': `cp:${cp.id}`,
                    },
                  },
                  cp.id,
                ),
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
              cell: (cp) =>
                cp.connectors.map((c) => `${c.connectorId}: ${c.status ?? 'unknown'}`).join(', ') ||
                missing('none'),
            },
          ],
          rows: list.chargePoints,
        }),
      );
    };
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
