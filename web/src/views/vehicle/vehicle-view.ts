import type { ApiClient } from '../../api/api-client';
import { DEVICE_ID_RULE, isDeviceId } from '../../api/device-id';
import type { SessionDetail } from '../../api/types';
import {
  fetchHourlyPerformance,
  fetchMappingHistory,
  fetchSession,
  fetchSessions,
  fetchVehicleStatus,
} from '../../api/endpoints';
import { h } from '../../dom/h';
import { formatDateTime } from '../../format/dates';
import {
  describeWindow,
  lastWholeHour,
  unpinned,
  windowBounds,
} from '../../routing/analytics-window';
import { formatRoute, type Route } from '../../routing/routes';
import { notice } from '../notices';
import type { LoadOutcome, View, ViewDeps } from '../view';
import { createWindowPicker, type WindowPicker } from '../window-picker';
import { EfficiencySection } from './efficiency-section';
import { LiveStatusSection } from './live-status-section';
import { MappingSection } from './mapping-section';
import { isNotFound } from './section';
import { SessionsSection } from './sessions-section';

type VehicleRoute = Extract<Route, { view: 'vehicle' }>;

/** A 404 for the vehicle means "nothing yet"; anything else is an error for the section. */
async function orNullIfNotFound<T>(request: Promise<T>): Promise<T | null> {
  try {
    return await request;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * One vehicle: its live status, hourly efficiency and SoC charts for the window, its charging
 * sessions (when the engine has them) and its mapping history. Sections load independently.
 */
export class VehicleView implements View {
  readonly root: HTMLElement;
  private readonly picker: WindowPicker;
  private readonly live = new LiveStatusSection();
  private readonly efficiency = new EfficiencySection();
  private readonly sessions: SessionsSection;
  private readonly mapping = new MappingSection();
  private generation = 0;

  constructor(
    private route: VehicleRoute,
    private readonly deps: ViewDeps & { api: ApiClient; fleetHref(): string },
  ) {
    this.picker = createWindowPicker({
      idPrefix: 'vehicle-window',
      now: () => deps.api.engineNow() ?? Date.now(),
      onChange: ({ window }) => deps.navigate({ ...this.route, window, session: null }),
    });
    this.picker.show({ window: route.window, linkProblem: route.windowProblem });
    this.sessions = new SessionsSection({
      open: (session) => formatRoute({ ...this.route, session }),
      close: () => formatRoute({ ...this.route, session: null }),
    });
    this.root = h(
      'section',
      { class: 'view vehicle-view', attrs: { 'aria-labelledby': 'view-title' } },
      h(
        'nav',
        { class: 'breadcrumb', attrs: { 'aria-label': 'Breadcrumb' } },
        h('a', { attrs: { href: deps.fleetHref() } }, '← Fleet'),
      ),
      h('h1', { attrs: { id: 'view-title', tabindex: -1 } }, `Vehicle ${route.vehicleId}`),
      this.validId
        ? [
            this.picker.root,
            this.live.root,
            this.efficiency.root,
            this.sessions.root,
            this.mapping.root,
          ]
        : invalidIdNotice(route.vehicleId),
    );
  }

  /**
   * An id the engine refuses (a mistyped or tampered link) is said once, here, and asked of no
   * endpoint: each would answer the same 400, one error per section.
   */
  private get validId(): boolean {
    return isDeviceId(this.route.vehicleId);
  }

  update(route: Route): Promise<LoadOutcome> | null {
    if (route.view !== 'vehicle' || route.vehicleId !== this.route.vehicleId) return null;
    // Another window picked: what is shown no longer answers it.
    if (JSON.stringify(route.window) !== JSON.stringify(this.route.window)) {
      const forWhat = `for the ${describeWindow(route.window).toLowerCase()}`;
      this.efficiency.forget(forWhat);
      this.sessions.forget(forWhat);
    }
    this.showWindow(route, route.windowProblem);
    return this.load();
  }

  /** The route's window in the picker, and the link's problem with it, if any. */
  private showWindow(route: VehicleRoute, linkProblem: string | undefined): void {
    this.route = route;
    this.picker.show({ window: route.window, linkProblem });
  }

  /**
   * A window pinned to the fleet report this vehicle was opened from (its figures equal its line)
   * goes on to the last hours now once the engine's hour has turned, saying so: kept, the view
   * would show an ever older window while saying "Updated". One ending after the engine's now (a
   * link edited, or made by a clock ahead) is no report's window: likewise. Whether it went on.
   * The sections keep what they show until the new window's answers replace it: a refresh moves
   * on so, and must not take the reader's place and focus with it.
   */
  private followTheHour(): boolean {
    const { window } = this.route;
    const now = this.deps.api.engineNow();
    if (window.kind !== 'last' || !window.end || now === null) return false;
    const end = Date.parse(window.end);
    const last = describeWindow(window).toLowerCase();
    let why: string;
    if (end > now)
      why = `The link's window ends ${formatDateTime(end)}, which is still to come by the engine's clock: showing the ${last} now.`;
    else if (lastWholeHour(now) > end)
      why = `The hour has turned since the fleet report this vehicle was opened from (its window ended ${formatDateTime(end)}): showing the ${last} now.`;
    else return false;
    this.showWindow({ ...this.route, window: unpinned(window) }, why);
    this.deps.replace(this.route);
    return true;
  }

  /** The requests that depend on the window: its hourly report and its sessions. */
  private fetchWindowed() {
    const { api } = this.deps;
    const { vehicleId, window } = this.route;
    const bounds = windowBounds(window, api.engineNow() ?? Date.now());
    return Promise.allSettled([
      fetchHourlyPerformance(api, vehicleId, bounds),
      fetchSessions(api, vehicleId, bounds),
    ]);
  }

  async load(): Promise<LoadOutcome> {
    const generation = ++this.generation;
    if (!this.validId) return 'ok';
    const { api } = this.deps;
    this.followTheHour();
    const { vehicleId, session } = this.route;
    const windowed = this.fetchWindowed();
    const [status, mapping, detail] = await Promise.allSettled([
      orNullIfNotFound(fetchVehicleStatus(api, vehicleId)),
      orNullIfNotFound(fetchMappingHistory(api, vehicleId)),
      session ? fetchSession(api, vehicleId, session) : Promise.resolve(null),
    ]);
    let [report, sessions] = await windowed;
    if (generation !== this.generation) return 'superseded';
    // A link's first answers bring the engine's clock, which may say its window is not one to show:
    // the new window's are asked, the rest stands.
    if (this.followTheHour()) {
      [report, sessions] = await this.fetchWindowed();
      if (generation !== this.generation) return 'superseded';
    }
    const results = [status, report, mapping, sessions, detail];
    const opened = this.followSessionId(session, detail);

    if (status.status === 'fulfilled') this.live.render(status.value);
    else this.live.showError(status.reason);

    if (report.status === 'fulfilled') this.efficiency.render(report.value);
    else if (isNotFound(report.reason)) this.efficiency.renderMissing(report.reason.message);
    else this.efficiency.showError(report.reason);

    if (mapping.status === 'fulfilled') this.mapping.render(mapping.value);
    else this.mapping.showError(mapping.reason);

    if (sessions.status === 'fulfilled') {
      this.sessions.render(sessions.value?.sessions ?? null, opened);
      if (sessions.value) {
        if (detail.status === 'fulfilled') this.sessions.renderDetail(detail.value);
        else this.sessions.renderDetailError(detail.reason);
      }
    } else if (isNotFound(sessions.reason)) {
      this.sessions.render([], opened); // a vehicle the engine has nothing on has no sessions
    } else {
      this.sessions.root.hidden = false;
      this.sessions.showError(sessions.reason);
    }
    // A vehicle the engine has nothing on (its 404) is an answer, shown as such: not a failure.
    const failed = results.some((r) => r.status === 'rejected' && !isNotFound(r.reason));
    return failed ? 'failed' : 'ok';
  }

  /**
   * The open session's current id. A late reading that moved a detected session's start changes
   * its id; the engine answers the old one with the session now holding that instant, whose id
   * the address then takes (no history entry), so that its row is marked and a link copied
   * names it.
   */
  private followSessionId(
    asked: string | null,
    detail: PromiseSettledResult<SessionDetail | null>,
  ): string | null {
    const current = detail.status === 'fulfilled' && detail.value ? detail.value.id : asked;
    if (current !== asked) {
      this.route = { ...this.route, session: current };
      this.deps.replace(this.route);
    }
    return current;
  }

  destroy(): void {
    this.generation += 1;
    this.efficiency.destroy();
    this.sessions.destroy();
  }
}

const invalidIdNotice = (vehicleId: string) =>
  notice(
    'error',
    `“${vehicleId}” is not a vehicle id`,
    `The engine refuses it (400): vehicleId must be ${DEVICE_ID_RULE}. Open a vehicle from the fleet, or by its id under Devices.`,
  );
