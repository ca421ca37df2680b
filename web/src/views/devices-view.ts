import { ApiError, type ApiClient } from '../api/api-client';
import { DEVICE_ID_RULE, isDeviceId } from '../api/device-id';
import { fetchMeters, fetchVehicles } from '../api/endpoints';
import type { EnergyReadings, MeterListing, VehicleListing } from '../api/types';
import { h, replaceContent } from '../dom/h';
import { formatAge, formatDateTimeSeconds } from '../format/dates';
import {
  formatCelsius,
  formatCount,
  formatKwh,
  formatPercent,
  formatVolts,
} from '../format/numbers';
import {
  DEVICE_LIST_KINDS,
  firstPage,
  formatRoute,
  PAGE_SIZES,
  QUIET_FILTERS,
  vehicleRoute,
  type DeviceListKind,
  type QuietFilter,
  type Route,
} from '../routing/routes';
import { dataTable, deviceId, type Column } from './data-table';
import { errorNotice, loadingNotice, notice, staleNotice } from './notices';
import { firstPageLink, pager } from './pager';
import { timeText } from './time-text';
import type { LoadOutcome, View, ViewDeps } from './view';

type DevicesRoute = Extract<Route, { view: 'devices' }>;

/** A reading older than this is called out, as the vehicle's live status does. */
const STALE_AFTER_MS = 15 * 60_000;

const missing = (text: string) => h('span', { class: 'missing' }, text);

const KINDS: Record<DeviceListKind, { label: string; one: string; many: string }> = {
  vehicles: { label: 'Vehicles', one: 'vehicle', many: 'vehicles' },
  meters: { label: 'Meters', one: 'meter', many: 'meters' },
};

const QUIET_LABELS: Record<QuietFilter, string> = {
  all: 'All',
  '15m': 'More than 15 min',
  '1h': 'More than 1 hour',
  '24h': 'More than 24 hours',
};

/** A page of the engine's list, the kind's rows. */
type DevicePage =
  | { kind: 'vehicles'; rows: VehicleListing[]; nextCursor: string | null }
  | { kind: 'meters'; rows: MeterListing[]; nextCursor: string | null };

/** What one load asked and got: the page, the clock it was asked at, its silentSince. */
interface Loaded {
  page: DevicePage;
  now: number;
  silentSince: string | null;
}

/** The page of `route` as of `now`; null: this engine has no device lists. */
async function fetchDevicePage(
  api: ApiClient,
  route: DevicesRoute,
  silentSince: string | null,
): Promise<DevicePage | null> {
  const query = {
    limit: route.limit,
    cursor: route.trail[route.trail.length - 1],
    silentSince: silentSince ?? undefined,
  };
  if (route.kind === 'meters') {
    const list = await fetchMeters(api, query);
    return list && { kind: 'meters', rows: list.meters, nextCursor: list.nextCursor };
  }
  const list = await fetchVehicles(api, query);
  return list && { kind: 'vehicles', rows: list.vehicles, nextCursor: list.nextCursor };
}

/** The kind, the "gone quiet" filter and the page size, as radios and a select. */
function createDeviceFilter(onChange: (choice: Partial<DevicesRoute>) => void) {
  const radios = <V extends string>(name: string, options: [V, string][], pick: (v: V) => void) =>
    options.map(([value, label]) => {
      const id = `devices-${name}-${value}`;
      const input = h('input', {
        attrs: { type: 'radio', name: `devices-${name}`, id, value },
        on: { change: () => pick(value) },
      });
      return {
        value,
        input,
        element: h('span', { class: 'radio' }, input, h('label', { attrs: { for: id } }, label)),
      };
    });
  const kinds = radios(
    'kind',
    DEVICE_LIST_KINDS.map((k) => [k, KINDS[k].label]),
    (kind) => onChange({ kind }),
  );
  const quiet = radios(
    'quiet',
    (Object.keys(QUIET_FILTERS) as QuietFilter[]).map((q) => [q, QUIET_LABELS[q]]),
    (q) => onChange({ quiet: q }),
  );
  const size = h(
    'select',
    {
      attrs: { id: 'devices-page-size' },
      on: { change: () => onChange({ limit: Number(size.value) }) },
    },
    PAGE_SIZES.map((n) => h('option', { attrs: { value: n } }, formatCount(n))),
  );
  const linkProblem = h('p', {
    class: 'field-problem',
    attrs: { id: 'devices-link-problem', role: 'status', hidden: true },
  });
  const root = h(
    'form',
    {
      class: 'window-picker device-filter',
      attrs: { 'aria-label': 'Devices shown' },
      on: { submit: (event) => event.preventDefault() },
    },
    h(
      'fieldset',
      null,
      h('legend', null, 'Devices'),
      kinds.map((r) => r.element),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, 'Gone quiet for'),
      quiet.map((r) => r.element),
    ),
    h(
      'div',
      { class: 'page-size' },
      h('label', { attrs: { for: 'devices-page-size' } }, 'Rows per page'),
      size,
    ),
    linkProblem,
  );
  return {
    root,
    /** Shows the route's choice (from the URL), without calling onChange. */
    show(route: DevicesRoute, problem?: string) {
      for (const r of kinds) r.input.checked = r.value === route.kind;
      for (const r of quiet) r.input.checked = r.value === route.quiet;
      size.value = String(route.limit);
      linkProblem.textContent = problem ?? '';
      linkProblem.hidden = !problem;
    },
  };
}

/**
 * Opens a vehicle's view by its id: in a fleet of thousands, paging to it is no way to find it.
 * An id the engine does not know opens a view that says so.
 */
function createVehicleOpener(open: (vehicleId: string) => void): HTMLFormElement {
  const input = h('input', {
    attrs: {
      id: 'devices-open-vehicle',
      type: 'text',
      autocomplete: 'off',
      spellcheck: 'false',
      required: true,
      // Spaces alone are no id: the browser says so instead of the form doing nothing.
      pattern: '.*\\S.*',
      title: 'a vehicle id, e.g. V-17',
    },
    // What the engine would refuse is said at the field, until the id is changed.
    on: { input: () => input.setCustomValidity('') },
  });
  return h(
    'form',
    {
      class: 'vehicle-opener',
      attrs: { 'aria-label': 'Open a vehicle' },
      on: {
        submit: (event) => {
          event.preventDefault();
          const vehicleId = input.value.trim();
          if (isDeviceId(vehicleId)) return open(vehicleId);
          input.setCustomValidity(`A vehicle id is ${DEVICE_ID_RULE}.`);
          input.reportValidity();
        },
      },
    },
    h('label', { attrs: { for: 'devices-open-vehicle' } }, 'Open a vehicle by id'),
    input,
    h('button', { attrs: { type: 'submit' } }, 'Open'),
  );
}

/**
 * Every meter or vehicle with a reading stored in PostgreSQL, in id order, with its latest stored
 * reading and its age (GET /v1/meters, GET /v1/vehicles); "gone quiet for more than" keeps those
 * whose latest reading is older than now minus that (silentSince). Paged by the engine's cursors,
 * which the URL keeps, as the fleet's.
 */
export class DevicesView implements View {
  readonly root: HTMLElement;
  private readonly filter: ReturnType<typeof createDeviceFilter>;
  private readonly feedback = h('div', { class: 'feedback' });
  private readonly content = h('div', { class: 'devices-content' });
  private shownAt: Date | null = null;
  private generation = 0;

  constructor(
    private route: DevicesRoute,
    private readonly deps: ViewDeps & { api: ApiClient },
  ) {
    // A new kind, filter or page size starts again at the first page.
    this.filter = createDeviceFilter((choice) =>
      deps.navigate({ ...firstPage(this.route), ...choice, linkProblem: undefined }),
    );
    this.filter.show(route, route.linkProblem);
    this.root = h(
      'section',
      { class: 'view devices-view', attrs: { 'aria-labelledby': 'view-title' } },
      h('h1', { attrs: { id: 'view-title', tabindex: -1 } }, 'Devices'),
      createVehicleOpener((vehicleId) => deps.navigate(vehicleRoute(vehicleId))),
      this.filter.root,
      this.feedback,
      this.content,
    );
    this.content.append(loadingNotice(`the ${KINDS[route.kind].many}`));
  }

  update(route: Route): Promise<LoadOutcome> | null {
    if (route.view !== 'devices') return null;
    this.route = route;
    this.shownAt = null;
    this.filter.show(route, route.linkProblem);
    return this.load();
  }

  async load(): Promise<LoadOutcome> {
    const generation = ++this.generation;
    const route = this.route;
    const what = `the ${KINDS[route.kind].many}`;
    // The filter is a duration: each load (a refresh too) asks from the clock's now.
    const now = Date.now();
    const quiet = QUIET_FILTERS[route.quiet];
    const silentSince = quiet ? new Date(now - quiet.ms).toISOString() : null;
    try {
      const page = await fetchDevicePage(this.deps.api, route, silentSince);
      if (generation !== this.generation) return 'superseded';
      this.feedback.replaceChildren();
      this.shownAt = new Date();
      if (!page) {
        replaceContent(
          this.content,
          notice(
            'empty',
            'Device lists are not available on this engine',
            `It has no GET /v1/${route.kind} endpoint (it answers "No route").`,
          ),
        );
        return 'ok';
      }
      replaceContent(this.content, this.render({ page, now, silentSince }, route));
      return 'ok';
    } catch (err) {
      if (generation !== this.generation) return 'superseded';
      // A bookmark or an edited link whose cursor the engine refuses.
      if (err instanceof ApiError && err.status === 400 && route.trail.length > 0)
        return this.firstPageInstead(route);
      if (this.shownAt)
        replaceContent(this.feedback, staleNotice(what, err, formatDateTimeSeconds(this.shownAt)));
      else replaceContent(this.content, errorNotice(what, err));
      return 'failed';
    }
  }

  /** The first page, saying so, and the address without the trail. */
  private firstPageInstead(route: DevicesRoute): Promise<LoadOutcome> {
    this.route = firstPage(route);
    this.deps.replace(this.route);
    this.filter.show(
      this.route,
      [route.linkProblem, 'The link named a page this list does not have: showing its first page.']
        .filter(Boolean)
        .join(' '),
    );
    return this.load();
  }

  destroy(): void {
    this.generation += 1;
  }

  private render(loaded: Loaded, route: DevicesRoute): DocumentFragment {
    const { page, silentSince } = loaded;
    const kind = KINDS[route.kind];
    const quiet = QUIET_FILTERS[route.quiet];
    const fragment = document.createDocumentFragment();
    fragment.append(
      h(
        'p',
        { class: 'window-line' },
        silentSince && quiet
          ? [
              `${kind.label} whose latest stored reading is before `,
              timeText(silentSince, { seconds: true }),
              ` (gone quiet for more than ${quiet.text}), by id`,
            ]
          : `Every ${kind.one} with a reading stored in PostgreSQL, by id, with its latest stored reading`,
      ),
    );
    if (page.rows.length === 0) {
      fragment.append(this.empty(route, silentSince));
      return fragment;
    }
    const first = (route.page - 1) * route.limit + 1;
    const last = first + page.rows.length - 1;
    const caption = `${kind.label}${quiet ? ` gone quiet for more than ${quiet.text}` : ''} by id: ${formatCount(first)}–${formatCount(last)}${page.nextCursor ? ', more follow' : ''}`;
    fragment.append(
      page.kind === 'vehicles'
        ? dataTable<VehicleListing>({
            caption,
            columns: vehicleColumns(loaded.now),
            rows: page.rows,
            rowAttrs: (v) => ({ 'data-device-id': v.vehicleId }),
          })
        : dataTable<MeterListing>({
            caption,
            columns: meterColumns(loaded.now),
            rows: page.rows,
            rowAttrs: (m) => ({ 'data-device-id': m.meterId }),
          }),
      pager({ label: `${kind.label} pages`, route, next: page.nextCursor, href: formatRoute }),
    );
    return fragment;
  }

  private empty(route: DevicesRoute, silentSince: string | null): HTMLElement {
    const kind = KINDS[route.kind];
    const quiet = QUIET_FILTERS[route.quiet];
    if (route.page > 1)
      return notice(
        'empty',
        'This page is past the end of the list',
        firstPageLink(formatRoute(firstPage(route))),
      );
    if (!quiet || !silentSince)
      return notice(
        'empty',
        `No ${kind.one} has reported yet`,
        `A ${kind.one} is listed once a reading of it is stored in PostgreSQL.`,
      );
    return notice(
      'empty',
      `No ${kind.one} has gone quiet for more than ${quiet.text}`,
      h(
        'span',
        null,
        `Every ${kind.one} with a stored reading has one at or after `,
        timeText(silentSince, { seconds: true }),
        '.',
      ),
    );
  }
}

/** The reading's time, in the browser's zone with seconds. */
const readingTime = <T extends { timestamp: string }>(): Column<T> => ({
  header: 'Latest reading',
  cell: (row) => timeText(row.timestamp, { seconds: true }),
});

/** How old the reading was when the page was loaded; over 15 min it is called out. */
const readingAge = <T extends { timestamp: string }>(now: number): Column<T> => ({
  header: 'Age',
  numeric: true,
  cell: (row) => {
    const age = now - Date.parse(row.timestamp);
    return h('span', { class: age > STALE_AFTER_MS ? 'age age-stale' : 'age' }, formatAge(age));
  },
});

/**
 * A reading's energy value, said as what it is by how the device's energy is read: the energy
 * since its reading before, or its register's running total (a meter's 1,024 kWh beside another's
 * 1 kWh is no reading of a thousand times the energy).
 */
const energyCell = (kwh: number, mode: EnergyReadings) => [
  formatKwh(kwh),
  h('span', { class: 'energy-kind' }, mode === 'cumulative' ? 'register total' : 'in the reading'),
];

const vehicleColumns = (now: number): Column<VehicleListing>[] => [
  {
    header: 'Vehicle',
    cell: (v) =>
      deviceId(v.vehicleId, {
        href: formatRoute(vehicleRoute(v.vehicleId)),
        focusKey: `vehicle:${v.vehicleId}`,
      }),
  },
  readingTime(),
  readingAge(now),
  { header: 'State of charge', numeric: true, cell: (v) => formatPercent(v.soc) },
  {
    header: 'DC energy',
    numeric: true,
    cell: (v) => energyCell(v.kwhDeliveredDc, v.energyReadings),
  },
  { header: 'Battery temperature', numeric: true, cell: (v) => formatCelsius(v.batteryTemp) },
];

const meterColumns = (now: number): Column<MeterListing>[] => [
  { header: 'Meter', cell: (m) => deviceId(m.meterId) },
  readingTime(),
  readingAge(now),
  {
    header: 'AC energy',
    numeric: true,
    cell: (m) => energyCell(m.kwhConsumedAc, m.energyReadings),
  },
  {
    header: 'Voltage',
    numeric: true,
    cell: (m) => (m.voltage === null ? missing('not measured') : formatVolts(m.voltage)),
  },
];
