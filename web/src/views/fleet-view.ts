import { ApiError, type ApiClient } from '../api/api-client';
import { fetchFlaggedSessions, fetchFleet } from '../api/endpoints';
import type { ChargingSession, FleetReport, FleetSessions, FleetVehicle } from '../api/types';
import { h, replaceContent, type Child } from '../dom/h';
import { formatDateTime, formatDateTimeSeconds } from '../format/dates';
import { formatAcKwh, formatCount, formatDcKwh, formatRatio } from '../format/numbers';
import {
  DEFAULT_WINDOW,
  describeWindow,
  fleetWindowQuery,
  lastWholeHour,
  type AnalyticsWindow,
} from '../routing/analytics-window';
import { firstPage, formatRoute, PAGE_SIZES, vehicleRoute, type Route } from '../routing/routes';
import { DataTable, deviceId, idList, type Column } from './data-table';
import { flagBadge, vehicleFlagOf, type Flag } from './flag';
import { errorNotice, loadingNotice, notice, staleNotice, warningList } from './notices';
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

/**
 * The window a vehicle opened from the report shows: the report's own. "The last N hours" is
 * pinned to the report's end, which the engine set: the browser's clock, or an hour turning
 * before the click, would give the vehicle another window than its line.
 */
const reportWindow = (window: AnalyticsWindow, report: FleetReport): AnalyticsWindow =>
  window.kind === 'last' ? { ...window, end: report.window.to } : window;

/** What of the link could not be shown: its screen or page, its window. */
const linkProblemOf = (route: FleetRoute): string | undefined =>
  [route.linkProblem, route.windowProblem].filter(Boolean).join(' ') || undefined;

/** The vehicles the report ranks (its table's rows over all pages). */
const measurableVehicles = ({ totals }: FleetReport): number =>
  totals.vehiclesChecked - totals.withoutMapping - totals.withoutMeterData;

/**
 * Whether `route`'s page number cannot be the report's: its rows would be numbered beyond the
 * report's ranked vehicles. (An empty page right after the last, its cursor the last one's
 * nextCursor, numbers none beyond them.)
 */
const pastTheEnd = (report: FleetReport, route: FleetRoute): boolean =>
  route.page > 1 &&
  (route.page - 1) * route.limit + report.vehicles.length > measurableVehicles(report);

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
  /**
   * The report on screen in three parts, for the route (its address) they were made for: what
   * is above the table (counts, notices), the table, what is below it (pager, lists). A refresh
   * or the flags arriving redraw the small parts and update the table's changed rows in place.
   */
  private parts: {
    address: string;
    above: HTMLElement;
    table: DataTable<FleetVehicle>;
    below: HTMLElement;
  } | null = null;
  /** What the table's rows are judged by now: the report's threshold, the flags in so far. */
  private judgedBy: { below: number; sessions: FlaggedSessions | null } = {
    below: 0,
    sessions: null,
  };
  /** The window the rows' vehicle links open: the report's on screen (see reportWindow). */
  private linkedWindow: AnalyticsWindow = DEFAULT_WINDOW;
  private generation = 0;

  constructor(
    private route: FleetRoute,
    private readonly deps: ViewDeps & { api: ApiClient },
  ) {
    this.picker = createWindowPicker({
      idPrefix: 'fleet-window',
      pageSizes: PAGE_SIZES,
      now: () => deps.api.engineNow() ?? Date.now(),
      onChange: ({ window, pageSize }) =>
        deps.navigate({
          ...this.route,
          window,
          limit: pageSize ?? this.route.limit,
          page: 1,
          trail: [],
        }),
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
    this.parts = null;
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
      if (generation !== this.generation) return 'superseded';
      if (this.hourTurnedSince(route, report)) return this.newWindowInstead(route, report);
      if (pastTheEnd(report, route)) return this.firstPageAfterTheEnd(route, report);
      const flags = this.fetchFlags(report, () => generation === this.generation);
      this.shown = { report, at: new Date() };
      this.feedback.replaceChildren();
      this.show(report, route);
      if (performance.getEntriesByName(FLEET_RENDERED_MARK).length === 0)
        performance.mark(FLEET_RENDERED_MARK);
      void flags.then((found) => this.showFlags(found, report, route, generation));
      return 'ok';
    } catch (err) {
      if (generation !== this.generation) return 'superseded';
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
    return this.restartAt(
      route,
      'The link named a page this report does not have: showing its first page.',
    );
  }

  /**
   * Whether this is a later page of "the last N hours" whose window the engine's hour has left
   * behind: its cursor keeps the window of its first page, so it would show that window for ever
   * while saying "Updated", and "Previous page" would lead to the first page of another window.
   */
  private hourTurnedSince(route: FleetRoute, report: FleetReport): boolean {
    const now = this.deps.api.engineNow();
    return (
      route.window.kind === 'last' &&
      route.page > 1 &&
      now !== null &&
      lastWholeHour(now) > Date.parse(report.window.to)
    );
  }

  /** The new window's first page, saying why: the one an operator paging "the last hours" expects. */
  private newWindowInstead(route: FleetRoute, report: FleetReport): Promise<LoadOutcome> {
    const last = describeWindow(route.window).toLowerCase();
    return this.restartAt(
      route,
      `The hour has turned, and with it the ${last}: showing the first page of the new window (page ${route.page} was of the window ending ${formatDateTime(report.window.to)}).`,
    );
  }

  /**
   * A page number beyond the report's vehicles (a link's, or one the fleet has shrunk under):
   * its rows numbered "19,951–20,000 of 1,000" would be believed.
   */
  private firstPageAfterTheEnd(route: FleetRoute, report: FleetReport): Promise<LoadOutcome> {
    const vehicles = measurableVehicles(report);
    const pages = Math.max(1, Math.ceil(vehicles / route.limit));
    return this.restartAt(
      route,
      `Page ${formatCount(route.page)} is past the end of the report (${formatCount(vehicles)} vehicle${vehicles === 1 ? '' : 's'}, ${formatCount(pages)} page${pages === 1 ? '' : 's'} of ${route.limit}): showing its first page.`,
    );
  }

  /** The report's first page, the address without the trail, and why (beside the picker). */
  private restartAt(route: FleetRoute, why: string): Promise<LoadOutcome> {
    this.route = firstPage(route);
    this.parts = null;
    this.deps.replace(this.route);
    this.picker.show({
      window: route.window,
      pageSize: route.limit,
      // The link's window problem, if it had one, still holds.
      linkProblem: [linkProblemOf(route), why].filter(Boolean).join(' '),
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

  /**
   * `data-session-flags` says whether the drift marks are in yet (pending, loaded, none, error).
   * The same page of the report shown again (a refresh, its flags arriving) keeps its table and
   * updates only the rows that changed.
   */
  private show(report: FleetReport, route: FleetRoute): void {
    const flags = this.flags;
    this.content.setAttribute('data-session-flags', flags.state);
    const sessionFlags = flags.state === 'loaded' ? flags.sessions : null;
    this.judgedBy = { below: report.below, sessions: sessionFlags };
    this.linkedWindow = reportWindow(route.window, report);
    const address = formatRoute(route);
    const listed = report.totals.vehiclesChecked > 0 && report.vehicles.length > 0;
    const { parts } = this;
    if (
      parts &&
      parts.address === address &&
      listed &&
      this.content.contains(parts.table.element)
    ) {
      replaceContent(parts.above, this.above(report, route, sessionFlags));
      parts.table.update(report.vehicles, this.caption(report, route));
      replaceContent(parts.below, this.below(report, route));
      return;
    }
    this.parts = null;
    const above = h('div', null, this.above(report, route, sessionFlags));
    if (!listed) {
      replaceContent(
        this.content,
        above,
        report.totals.vehiclesChecked > 0 ? this.below(report, route) : null,
      );
      return;
    }
    const table = this.table(report, route);
    const below = h('div', null, this.below(report, route));
    replaceContent(this.content, above, table.element, below);
    this.parts = { address, above, table, below };
  }

  /** The counts, and what changes how the table reads (or why there is none). */
  private above(
    report: FleetReport,
    route: FleetRoute,
    sessionFlags: FlaggedSessions | null,
  ): Child[] {
    // A window reaching before what history keeps: its vehicles may read as without meter data.
    const parts: Child[] = [
      this.summary(report, route, sessionFlags),
      warningList(report.warnings),
    ];
    const { totals } = report;
    if (totals.vehiclesChecked === 0) {
      parts.push(
        notice(
          'empty',
          'No vehicle sent readings in this window',
          'Choose a longer window, or check that the vehicles are ingesting telemetry.',
        ),
      );
      return parts;
    }
    // Above the lists: it changes how their AC and efficiency read.
    if (report.sharedMeters.length > 0) parts.push(sharedMetersNotice(report.sharedMeters));
    if (report.vehicles.length === 0) {
      parts.push(
        route.page > 1
          ? notice(
              'empty',
              'This page is past the end of the report',
              firstPageLink(formatRoute(firstPage(route))),
            )
          : notice(
              'empty',
              'No vehicle can be measured in this window',
              'Every vehicle with readings lacks a meter mapping or meter data (listed below).',
            ),
      );
    }
    return parts;
  }

  /** The pager (with a table) and the vehicles that could not be measured. */
  private below(report: FleetReport, route: FleetRoute): Child[] {
    return [
      report.vehicles.length > 0 ? this.pager(report, route) : null,
      this.vehicleList(
        'Without mapping',
        'mapped to no meter in this window, so AC energy is unknown',
        report.withoutMapping,
        route,
        report,
      ),
      this.vehicleList(
        'Without meter data',
        'their meters sent nothing in this window',
        report.withoutMeterData,
        route,
        report,
      ),
    ];
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

  private caption(report: FleetReport, route: FleetRoute): string {
    const first = (route.page - 1) * route.limit + 1;
    const last = first + report.vehicles.length - 1;
    return `Vehicles by efficiency, worst first: ${formatCount(first)}–${formatCount(last)} of ${formatCount(measurableVehicles(report))}`;
  }

  /** A row's flag, as the table draws it now. */
  private flagOf(v: FleetVehicle): Flag {
    const { below, sessions } = this.judgedBy;
    return vehicleFlagOf(v, below, sessions?.byVehicle.get(v.vehicleId) ?? []);
  }

  /** Its rows read their flag through flagOf, so flags arriving update them in place. */
  private table(report: FleetReport, route: FleetRoute): DataTable<FleetVehicle> {
    const flagOf = (v: FleetVehicle) => this.flagOf(v);
    const columns: Column<FleetVehicle>[] = [
      {
        header: 'Vehicle',
        cell: (v) =>
          deviceId(v.vehicleId, {
            href: formatRoute(vehicleRoute(v.vehicleId, this.linkedWindow)),
            focusKey: `vehicle:${v.vehicleId}`,
          }),
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
        cell: (v) =>
          v.acConsumedKwh === null
            ? missing('unknown')
            : formatAcKwh(v.acConsumedKwh, v.efficiency),
      },
      {
        header: 'DC delivered',
        numeric: true,
        cell: (v) =>
          v.dcDeliveredKwh === null
            ? missing('no readings')
            : formatDcKwh(v.dcDeliveredKwh, v.efficiency),
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
    return new DataTable<FleetVehicle>({
      caption: this.caption(report, route),
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
      // A row shows its figures and its flag (another route builds another table).
      identity: {
        key: (v) => v.vehicleId,
        version: (v) => {
          const flag = flagOf(v);
          const linked = JSON.stringify(this.linkedWindow);
          return `${JSON.stringify(v)} ${flag.reasons.join(' ')} ${flag.text} ${linked}`;
        },
      },
    });
  }

  private pager(report: FleetReport, route: FleetRoute): HTMLElement {
    return pager({
      label: 'Fleet report pages',
      route,
      next: report.nextCursor,
      href: formatRoute,
    });
  }

  private vehicleList(
    title: string,
    why: string,
    vehicleIds: string[],
    route: FleetRoute,
    report: FleetReport,
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
            deviceId(vehicleId, {
              href: formatRoute(vehicleRoute(vehicleId, reportWindow(route.window, report))),
            }),
          ),
        ),
      ),
    );
  }
}
