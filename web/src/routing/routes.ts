import {
  DEFAULT_WINDOW,
  unpinned,
  windowFromParams,
  windowToParams,
  type AnalyticsWindow,
} from './analytics-window';

/**
 * Every screen is a URL hash (#/fleet?window=7d, #/vehicles/V-1?window=24h&session=tx-12), so what
 * is on screen survives a reload and can be shared or bookmarked.
 */
export type Route =
  | ({
      view: 'fleet';
      window: AnalyticsWindow;
      /** Why the link's window is not the one shown (see windowFromParams). */
      windowProblem?: string;
      /**
       * Why the link's screen or page is not the one shown: its address named no screen, or a
       * page number its cursors cannot lead to.
       */
      linkProblem?: string;
      limit: number;
    } & PagedRoute)
  | {
      view: 'vehicle';
      vehicleId: string;
      window: AnalyticsWindow;
      windowProblem?: string;
      session: string | null;
    }
  | { view: 'charge-points' }
  | { view: 'charge-point'; chargePointId: string }
  | ({
      view: 'devices';
      kind: DeviceListKind;
      quiet: QuietFilter;
      /** Why the link's list is not the one shown (an unknown kind, quiet filter or page number). */
      linkProblem?: string;
      limit: number;
    } & PagedRoute);

/** A list the engine pages by cursor, as its address keeps it (the fleet's, the devices'). */
export interface PagedRoute {
  /** The page shown, 1 the first. */
  page: number;
  /**
   * The cursors that led to this page, oldest first (empty on page 1): the last MAX_TRAIL of them
   * (see nextPage).
   */
  trail: string[];
}

/** The device lists of the engine (GET /v1/meters, GET /v1/vehicles). */
export const DEVICE_LIST_KINDS = ['vehicles', 'meters'] as const;
export type DeviceListKind = (typeof DEVICE_LIST_KINDS)[number];

/** "Gone quiet for more than": the list's silentSince is now minus this much. */
export const QUIET_FILTERS = {
  all: null,
  '15m': { ms: 15 * 60_000, text: '15 minutes' },
  '1h': { ms: 3_600_000, text: '1 hour' },
  '24h': { ms: 86_400_000, text: '24 hours' },
} as const;
export type QuietFilter = keyof typeof QUIET_FILTERS;
const isQuietFilter = (value: string): value is QuietFilter =>
  Object.prototype.hasOwnProperty.call(QUIET_FILTERS, value);

export const PAGE_SIZES = [25, 50, 100, 250, 1000] as const;
export const DEFAULT_PAGE_SIZE = 50;

type FleetRoute = Extract<Route, { view: 'fleet' }>;

export const defaultRoute = (): FleetRoute => ({
  view: 'fleet',
  window: DEFAULT_WINDOW,
  limit: DEFAULT_PAGE_SIZE,
  page: 1,
  trail: [],
});

/**
 * The most cursors a list's address keeps (each up to some 200 characters): the address of page
 * 40 would otherwise carry 39 of them. Further back than they reach, "Previous page" gives way to
 * the first page; the browser's Back still goes through every page seen.
 */
export const MAX_TRAIL = 10;

/** The most pages a link may name: no list is paged further by hand (25 rows a page: 2.5 million). */
export const MAX_PAGE = 100_000;

/** The page after `route`'s, `cursor` its list's nextCursor. */
export const nextPage = <R extends PagedRoute>(route: R, cursor: string): R => ({
  ...route,
  page: route.page + 1,
  trail: [...route.trail, cursor].slice(-MAX_TRAIL),
});

/** The page before `route`'s; null on the first, or when the address no longer holds its cursor. */
export function previousPage<R extends PagedRoute>(route: R): R | null {
  if (route.page === 1 || (route.page > 2 && route.trail.length < 2)) return null;
  return { ...route, page: route.page - 1, trail: route.trail.slice(0, -1) };
}

/** The first page of `route`'s list. */
export const firstPage = <R extends PagedRoute>(route: R): R => ({ ...route, page: 1, trail: [] });

/**
 * A link's page and trail. `page=` is named only once earlier cursors were dropped (see
 * MAX_TRAIL), so it is at least one past the trail's cursors (a longer trail keeps its last
 * MAX_TRAIL); one that cannot be (edited, forged, no number) is the trail's own count, and a
 * problem to say.
 */
function pageFromParams(params: URLSearchParams): PagedRoute & { problem?: string } {
  const cursors = (params.get('trail') ?? '').split(',').filter(Boolean);
  const counted = cursors.length + 1;
  const trail = cursors.slice(-MAX_TRAIL);
  const named = params.get('page');
  if (named === null) return { page: counted, trail };
  const page = Number(named);
  const possible = page === counted || (trail.length > 0 && page > counted && page <= MAX_PAGE);
  if (Number.isSafeInteger(page) && possible) return { page, trail };
  return {
    page: counted,
    trail,
    problem: `The link's page number "${named}" cannot be right for its cursors: showing the page they lead to as page ${counted}.`,
  };
}

/** Every device of a kind, first page, none filtered out (the "Devices" entry of the menu). */
export const defaultDevicesRoute = (): Extract<Route, { view: 'devices' }> => ({
  view: 'devices',
  kind: 'vehicles',
  quiet: 'all',
  limit: DEFAULT_PAGE_SIZE,
  page: 1,
  trail: [],
});

/** A vehicle's view over `window` (the default one unless given), no session open. */
export const vehicleRoute = (
  vehicleId: string,
  window: AnalyticsWindow = DEFAULT_WINDOW,
): Route => ({
  view: 'vehicle',
  vehicleId,
  window,
  session: null,
});

/** A path segment as typed when it is no valid percent-encoding (a stray `%`): the engine names it. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function parseRoute(hash: string): Route {
  const [path, queryText = ''] = hash.replace(/^#/, '').split('?', 2);
  const params = new URLSearchParams(queryText);
  const parts = path.split('/').filter(Boolean).map(decodeSegment);
  switch (parts[0]) {
    case 'vehicles':
      if (parts.length === 2) {
        const { window, problem } = windowFromParams(params);
        return {
          view: 'vehicle',
          vehicleId: parts[1],
          window,
          windowProblem: problem ?? undefined,
          session: params.get('session'),
        };
      }
      break;
    case 'charge-points':
      if (parts.length === 1) return { view: 'charge-points' };
      if (parts.length === 2) return { view: 'charge-point', chargePointId: parts[1] };
      break;
    case 'devices':
      if (parts.length === 1) return devicesRoute(params);
      break;
    case 'fleet': {
      const limit = Number(params.get('limit'));
      const { window, problem } = windowFromParams(params);
      const { page, trail, problem: pageProblem } = pageFromParams(params);
      return {
        view: 'fleet',
        // The fleet's own cursors pin a later page's window.
        window: unpinned(window),
        windowProblem: problem ?? undefined,
        limit: (PAGE_SIZES as readonly number[]).includes(limit) ? limit : DEFAULT_PAGE_SIZE,
        linkProblem: pageProblem,
        page,
        trail,
      };
    }
  }
  // An empty address is the landing page; one that names no screen says so.
  if (parts.length === 0) return defaultRoute();
  return {
    ...defaultRoute(),
    linkProblem: `The link's address (${hash}) names no screen of the dashboard: showing the fleet instead.`,
  };
}

/**
 * #/devices?kind=vehicles&quiet=1h&limit=25&trail=...: a kind or filter the dashboard does not
 * know shows the default one, and says so rather than pass it off as asked.
 */
function devicesRoute(params: URLSearchParams): Route {
  const route = defaultDevicesRoute();
  const problems: string[] = [];
  const kind = params.get('kind');
  if (kind !== null) {
    if ((DEVICE_LIST_KINDS as readonly string[]).includes(kind))
      route.kind = kind as DeviceListKind;
    else problems.push(`its kind "${kind}" is neither vehicles nor meters`);
  }
  const quiet = params.get('quiet');
  if (quiet !== null) {
    if (isQuietFilter(quiet)) route.quiet = quiet;
    else problems.push(`its filter "${quiet}" is none of ${Object.keys(QUIET_FILTERS).join(', ')}`);
  }
  const limit = Number(params.get('limit'));
  if ((PAGE_SIZES as readonly number[]).includes(limit)) route.limit = limit;
  const { page, trail, problem: pageProblem } = pageFromParams(params);
  route.page = page;
  route.trail = trail;
  const listProblem =
    problems.length > 0 &&
    `The link's list could not be shown as asked: ${problems.join('; ')}. Showing the ${route.kind}${route.quiet === 'all' ? '' : ` gone quiet for more than ${QUIET_FILTERS[route.quiet].text}`} instead.`;
  route.linkProblem = [listProblem, pageProblem].filter(Boolean).join(' ') || undefined;
  return route;
}

function pageToParams(route: PagedRoute, params: URLSearchParams): void {
  if (route.page !== route.trail.length + 1) params.set('page', String(route.page));
  if (route.trail.length > 0) params.set('trail', route.trail.join(','));
}

export function formatRoute(route: Route): string {
  const params = new URLSearchParams();
  const seg = encodeURIComponent;
  switch (route.view) {
    case 'fleet':
      windowToParams(route.window, params);
      if (route.limit !== DEFAULT_PAGE_SIZE) params.set('limit', String(route.limit));
      pageToParams(route, params);
      return `#/fleet?${params}`;
    case 'vehicle':
      windowToParams(route.window, params);
      if (route.session) params.set('session', route.session);
      return `#/vehicles/${seg(route.vehicleId)}?${params}`;
    case 'charge-points':
      return '#/charge-points';
    case 'charge-point':
      return `#/charge-points/${seg(route.chargePointId)}`;
    case 'devices':
      params.set('kind', route.kind);
      params.set('quiet', route.quiet);
      if (route.limit !== DEFAULT_PAGE_SIZE) params.set('limit', String(route.limit));
      pageToParams(route, params);
      return `#/devices?${params}`;
  }
}
