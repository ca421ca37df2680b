import { ApiError, type ApiClient } from '../api/api-client';
import { fetchFlaggedSessions, fetchFleet } from '../api/endpoints';
import type { ChargingSession, FleetReport, FleetSessions, FleetVehicle } from '../api/types';
import { h, replaceContent } from '../dom/h';
import { formatDateTimeSeconds } from '../format/dates';
import { formatCount, formatKwh, formatRatio } from '../format/numbers';
import { describeWindow, fleetWindowQuery } from '../routing/analytics-window';
import { formatRoute, PAGE_SIZES, vehicleRoute, type Route } from '../routing/routes';
import { dataTable, idList, type Column } from './data-table';
import { flagBadge, vehicleFlagOf, type Flag } from './flag';
import { errorNotice, loadingNotice, notice, staleNotice } from './notices';
import { firstPageLink, pager } from './pager';
import { windowText } from './time-text';
import type { LoadOutcome, View, ViewDeps } from './view';
import { createWindowPicker, type WindowPicker } from './window-picker';

type FleetRoute = Extract<Route, { view: 'fleet' }>;

/** Marked once, when the first fleet table is on screen (the tests read it). */
export const FLEET_RENDERED_MARK = 'fleet-table-rendered';
/** Marked once, when the flagged sessions (drift) first mark the table. */
export const FLEET_FLAGS_MARK = 'fleet-session-flags-rendered';

const missing = (text: string) => h('span', { class: 'missing' }, text);

/** Meters mapped to two or more of the listed vehicles at once: each counts the meter's whole AC. */
const sharedMetersNotice = (shared: FleetReport['sharedMeters']) =>
  notice(
    'info',
    'Meters mapped to several vehicles at once',
    `${shared.map((m) => `${m.meterId} (${m.vehicles.join(', ')})`).join('; ')}: each of these vehicles counts the meter's whole AC energy. Map each vehicle to its own meter, or read their efficiency with that in mind.`,
  );

/** What of the link could not be shown: its screen, its window. */
const linkProblemOf = (route: FleetRoute): string | undefined =>
  [route.linkProblem, route.windowProblem].filter(Boolean).join(' ') || undefined;

/** The fleet's flagged sessions in the window (GET /v1/analytics/sessions?flagged=true). */
interface FlaggedSessions {
  byVehicle: Map<string, ChargingSession[]>;
  totals: FleetSessions['totals'];
}

/**
 * Whether the table carries the session flags: `none`, the engine has no sessions endpoint;
 * `error`, it could not answer (the report is shown without them, with a notice).
 */
type SessionFlagsState =
  { state: 'pending' | 'none' | 'error' } | { state: 'loaded'; sessions: FlaggedSessions };

function flaggedSessionsOf(found: FleetSessions | null): FlaggedSessions | null {
  if (!found) return null;
  const byVehicle = new Map<string, ChargingSession[]>();
  for (const s of found.sessions)
    byVehicle.set(s.vehicleId, [...(byVehicle.get(s.vehicleId) ?? []), s]);
  return { byVehicle, totals: found.totals };
}

/**
 * The landing page: every vehicle's charging efficiency over the window, worst first, flagged
 * ones marked with their reason; paged by the engine's cursors, which the URL keeps.
 */
export class FleetView implements View {
  readonly root: HTMLElement;
  private readonly picker: WindowPicker;
  private readonly feedback = h('div', { class: 'feedback' });
  private readonly content = h('div', { class: 'fleet-content' });
  private shown: { report: FleetReport; at: Date } | null = null;
  /** The window's flagged sessions; a refresh shows the last ones until the new ones arrive. */
  private flags: SessionFlagsState = { state: 'pending' };
  private generation = 0;

  constructor(
    private route: FleetRoute,
    private readonly deps: ViewDeps & { api: ApiClient },
  ) {
    this.picker = createWindowPicker({
      idPrefix: 'fleet-window',
      pageSizes: PAGE_SIZES,
      onChange: ({ window, pageSize }) =>
        deps.navigate({ ...this.route, window, limit: pageSize ?? this.route.limit, trail: [] }),
    });
    this.picker.show({
      window: route.window,
      pageSize: route.limit,
      linkProblem: linkProblemOf(route),
    });
    this.root = h(
      'section',
      { class: 'view fleet-view', attrs: { 'aria-labelledby': 'view-title' } },
      h('h1', { attrs: { id: 'view-title', tabindex: -1 } }, 'Fleet charging efficiency'),
      this.picker.root,
      this.feedback,
      this.content,
    );
    this.content.append(loadingNotice('the fleet report'));
  }

  update(route: Route): Promise<LoadOutcome> | null {
    if (route.view !== 'fleet') return null;
    this.route = route;
    this.shown = null;
    this.flags = { state: 'pending' };
    this.picker.show({
      window: route.window,
      pageSize: route.limit,
      linkProblem: linkProblemOf(route),
    });
    return this.load();
  }

  /**
   * Resolves once the report's table is on screen, so the router restores the scroll position
   * then and not seconds later, under a reader who has scrolled since; the drift marks follow.
   */
  async load(): Promise<LoadOutcome> {
    const generation = ++this.generation;
    const route = this.route;
    try {
      const report = await fetchFleet(this.deps.api, {
        ...fleetWindowQuery(route.window),
        limit: route.limit,
        cursor: route.trail[route.trail.length - 1],
      });
      if (generation !== this.generation) return 'ok';
      const flags = this.fetchFlags(report, () => generation === this.generation);
      this.shown = { report, at: new Date() };
      this.feedback.replaceChildren();
      this.show(report, route);
      if (performance.getEntriesByName(FLEET_RENDERED_MARK).length === 0)
        performance.mark(FLEET_RENDERED_MARK);
      void flags.then((found) => this.showFlags(found, report, route, generation));
      return 'ok';
    } catch (err) {
      if (generation !== this.generation) return 'failed';
      if (err instanceof ApiError && err.status === 400 && /cursor/.test(err.message)) {
        return this.firstPageInstead(route);
      }
      if (this.shown) {
        replaceContent(
          this.feedback,
          staleNotice('the fleet report', err, formatDateTimeSeconds(this.shown.at)),
        );
      } else {
        replaceContent(this.content, errorNotice('the fleet report', err));
      }
      return 'failed';
    }
  }

  /**
   * A link to a later page whose cursor the engine refuses (a bookmark, an edited URL): the first
   * page, saying so, and the address without the trail. Kept, every refresh failed the same way,
   * and picking the window already chosen changed nothing.
   */
  private firstPageInstead(route: FleetRoute): Promise<LoadOutcome> {
    this.route = { ...route, trail: [] };
    this.deps.replace(this.route);
    this.picker.show({
      window: route.window,
      pageSize: route.limit,
      // The link's window problem, if it had one, still holds.
      linkProblem: [
        linkProblemOf(route),
        'The link named a page this report does not have: showing its first page.',
      ]
        .filter(Boolean)
        .join(' '),
    });
    return this.load();
  }

  /**
   * In the report's own window: a later page's cursor keeps the window of its first page (an hour
   * ago, say), which the browser's clock would not give.
   */
  private fetchFlags(
    report: FleetReport,
    wanted: () => boolean,
  ): Promise<FlaggedSessions | null | { error: unknown }> {
    return fetchFlaggedSessions(this.deps.api, report.window, wanted).then(
      flaggedSessionsOf,
      (error) => ({ error }),
    );
  }

  private showFlags(
    flags: FlaggedSessions | null | { error: unknown },
    report: FleetReport,
    route: FleetRoute,
    generation: number,
  ): void {
    if (generation !== this.generation) return;
    if (flags && 'error' in flags) {
      this.feedback.append(errorNotice('the flagged sessions (drift)', flags.error));
      this.flags = { state: 'error' };
    } else {
      this.flags = flags ? { state: 'loaded', sessions: flags } : { state: 'none' };
    }
    this.show(report, route);
    if (
      this.flags.state === 'loaded' &&
      performance.getEntriesByName(FLEET_FLAGS_MARK).length === 0
    )
      performance.mark(FLEET_FLAGS_MARK);
  }

  destroy(): void {
    this.generation += 1;
  }

  /** `data-session-flags` says whether the drift marks are in yet (pending, loaded, none, error). */
  private show(report: FleetReport, route: FleetRoute): void {
    const flags = this.flags;
    this.content.setAttribute('data-session-flags', flags.state);
    replaceContent(
      this.content,
      this.render(report, route, flags.state === 'loaded' ? flags.sessions : null),
    );
  }

  private render(
    report: FleetReport,
    route: FleetRoute,
    sessionFlags: FlaggedSessions | null,
  ): DocumentFragment {
    const fragment = document.createDocumentFragment();
    fragment.append(this.summary(report, route, sessionFlags));
    const { totals } = report;
    if (totals.vehiclesChecked === 0) {
      fragment.append(
        notice(
          'empty',
          'No vehicle sent readings in this window',
          'Choose a longer window, or check that the vehicles are ingesting telemetry.',
        ),
      );
      return fragment;
    }
    // Above the lists: it changes how their AC and efficiency read.
    if (report.sharedMeters.length > 0) fragment.append(sharedMetersNotice(report.sharedMeters));
    if (report.vehicles.length === 0) {
      fragment.append(
        route.trail.length > 0
          ? notice(
              'empty',
              'This page is past the end of the report',
              firstPageLink(formatRoute({ ...route, trail: [] })),
            )
          : notice(
              'empty',
              'No vehicle can be measured in this window',
              'Every vehicle with readings lacks a meter mapping or meter data (listed below).',
            ),
      );
    } else {
      const flagOf = (v: FleetVehicle) =>
        vehicleFlagOf(v, report.below, sessionFlags?.byVehicle.get(v.vehicleId) ?? []);
      fragment.append(this.table(report, route, flagOf), this.pager(report, route));
    }
    fragment.append(
      this.vehicleList(
        'Without mapping',
        'mapped to no meter in this window, so AC energy is unknown',
        report.withoutMapping,
        route,
      ),
      this.vehicleList(
        'Without meter data',
        'their meters sent nothing in this window',
        report.withoutMeterData,
        route,
      ),
    );
    return fragment;
  }

  private summary(
    report: FleetReport,
    route: FleetRoute,
    sessionFlags: FlaggedSessions | null,
  ): HTMLElement {
    const { totals } = report;
    const item = (label: string, value: number, className = '') =>
      h(
        'div',
        { class: `count ${className}` },
        h('dt', null, label),
        h('dd', null, formatCount(value)),
      );
    return h(
      'div',
      { class: 'fleet-summary' },
      h(
        'p',
        { class: 'window-line' },
        `${describeWindow(route.window)}: `,
        windowText(report.window),
        ` · flagged below ${formatRatio(report.below)} efficiency`,
        this.flags.state === 'pending' ? ' · checking the sessions for drift…' : '',
      ),
      h(
        'dl',
        { class: 'counts' },
        item('Vehicles checked', totals.vehiclesChecked),
        item(
          'Flagged below threshold',
          totals.vehiclesFlagged,
          totals.vehiclesFlagged > 0 ? 'count-alert' : '',
        ),
        item('Without mapping', totals.withoutMapping),
        item('Without meter data', totals.withoutMeterData),
        sessionFlags
          ? [
              item('Sessions', sessionFlags.totals.sessions),
              item(
                'Sessions flagged',
                sessionFlags.totals.flagged,
                sessionFlags.totals.flagged > 0 ? 'count-sessions-flagged' : '',
              ),
              item('Sessions drifting', sessionFlags.totals.drifting, 'count-drifting'),
            ]
          : null,
      ),
    );
  }

  private table(
    report: FleetReport,
    route: FleetRoute,
    flagOf: (v: FleetVehicle) => Flag,
  ): HTMLElement {
    const columns: Column<FleetVehicle>[] = [
      {
        header: 'Vehicle',
        cell: (v) =>
          h(
            'a',
            {
              attrs: {
                href: formatRoute(vehicleRoute(v.vehicleId, route.window)),
                'data-focus-key': `vehicle:${v.vehicleId}`,
              },
            },
            v.vehicleId,
          ),
      },
      { header: 'Status', cell: (v) => flagBadge(flagOf(v)) },
      {
        header: 'Efficiency (DC / AC)',
        numeric: true,
        cell: (v) => (v.efficiency === null ? missing('n/a') : formatRatio(v.efficiency)),
      },
      {
        header: 'AC consumed',
        numeric: true,
        cell: (v) => (v.acConsumedKwh === null ? missing('unknown') : formatKwh(v.acConsumedKwh)),
      },
      {
        header: 'DC delivered',
        numeric: true,
        cell: (v) =>
          v.dcDeliveredKwh === null ? missing('no readings') : formatKwh(v.dcDeliveredKwh),
      },
      {
        header: 'Meters',
        // One mapping period per OCPP transaction: the same meter often, named once.
        cell: (v) => idList([...new Set(v.meters.map((m) => m.meterId))]),
      },
      {
        header: 'Readings (vehicle / meter)',
        numeric: true,
        cell: (v) =>
          `${formatCount(v.counts.vehicleReadings)} / ${formatCount(v.counts.meterReadings)}`,
      },
    ];
    const first = route.trail.length * route.limit + 1;
    const last = first + report.vehicles.length - 1;
    return dataTable({
      caption: `Vehicles by efficiency, worst first: ${formatCount(first)}–${formatCount(last)} of ${formatCount(
        report.totals.vehiclesChecked -
          report.totals.withoutMapping -
          report.totals.withoutMeterData,
      )}`,
      columns,
      rows: report.vehicles,
      rowAttrs: (v) => {
        const { flagged, reasons } = flagOf(v);
        return {
          class: flagged ? 'row-flagged' : undefined,
          'data-vehicle-id': v.vehicleId,
          'data-flagged': flagged ? 'true' : 'false',
          'data-flag-reasons': reasons.join(' ') || undefined,
        };
      },
    });
  }

  private pager(report: FleetReport, route: FleetRoute): HTMLElement {
    const page = route.trail.length + 1;
    return pager({
      label: 'Fleet report pages',
      page,
      previous: page > 1 ? formatRoute({ ...route, trail: route.trail.slice(0, -1) }) : null,
      next: report.nextCursor
        ? formatRoute({ ...route, trail: [...route.trail, report.nextCursor] })
        : null,
    });
  }

  private vehicleList(
    title: string,
    why: string,
    vehicleIds: string[],
    route: FleetRoute,
  ): HTMLElement | string {
    if (vehicleIds.length === 0) return '';
    return h(
      'details',
      { class: 'vehicle-list', attrs: { 'data-state-key': title } },
      h(
        'summary',
        null,
        `${title}: ${formatCount(vehicleIds.length)} vehicle${vehicleIds.length === 1 ? '' : 's'} (${why})`,
      ),
      h(
        'ul',
        null,
        vehicleIds.map((vehicleId) =>
          h(
            'li',
            null,
            h(
              'a',
              {
                attrs: { href: formatRoute(vehicleRoute(vehicleId, route.window)) },
              },
              vehicleId,
            ),
          ),
        ),
      ),
    );
  }
}
