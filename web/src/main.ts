/**
 * The dashboard's composition root: builds the API client, the key prompt, the views and the
 * router, and starts the 30-second refresh. Nothing else in the page holds global state.
 */
import 'uplot/dist/uPlot.min.css';
import './styles/main.css';
import { ApiClient } from './api/api-client';
import { fetchChargePoints } from './api/endpoints';
import { startAutoRefresh } from './app/auto-refresh';
import { createScrollMemory } from './app/scroll-memory';
import { startViewRouter } from './app/view-router';
import { createKeyDialog } from './auth/key-dialog';
import { createSessionKeyStore } from './auth/session-key-store';
import { defaultDevicesRoute, defaultRoute, formatRoute, type Route } from './routing/routes';
import { ChargePointsView, ChargePointView } from './views/charge-points-view';
import { DevicesView } from './views/devices-view';
import { FleetView } from './views/fleet-view';
import { replaceOutageNotices } from './views/notices';
import { VehicleView } from './views/vehicle/vehicle-view';
import type { View } from './views/view';

const REFRESH_INTERVAL_MS = 30_000;
const FLEET_HREF_KEY = 'energy-dashboard:fleet-href';
const DEVICES_HREF_KEY = 'energy-dashboard:devices-href';

function required<T extends Element>(selector: string): T {
  const el = document.querySelector<T>(selector);
  if (!el) throw new Error(`the page lacks ${selector}`);
  return el;
}

function start(): void {
  const main = required<HTMLElement>('#main');
  const status = required<HTMLElement>('.refresh-status');
  const fleetLink = required<HTMLAnchorElement>('[data-nav="fleet"]');
  const devicesLink = required<HTMLAnchorElement>('[data-nav="devices"]');
  const chargePointsItem = required<HTMLElement>('[data-nav-item="charge-points"]');
  const navLinks = [...document.querySelectorAll<HTMLAnchorElement>('[data-nav]')];

  const forgetKey = required<HTMLButtonElement>('.forget-key');
  const keys = createSessionKeyStore(sessionStorage, (kept) => {
    forgetKey.hidden = !kept;
  });
  forgetKey.hidden = keys.get() === null;
  // A reload: nothing read with the key stays on screen, and the engine's first 401 asks anew.
  forgetKey.addEventListener('click', () => {
    keys.clear();
    location.reload();
  });
  const askForKey = createKeyDialog(document.body);
  const api = new ApiClient({
    keys,
    promptForKey: (reason) => {
      replaceOutageNotices(main);
      return askForKey(reason);
    },
  });
  const navigate = (route: Route) => {
    location.hash = formatRoute(route);
  };
  // The fleet as last seen (window, page), so "Fleet" goes back to it, also after a reload.
  const fleetHref = () => sessionStorage.getItem(FLEET_HREF_KEY) ?? formatRoute(defaultRoute());
  // The devices as last seen (kind, filter, page), likewise.
  const devicesHref = () =>
    sessionStorage.getItem(DEVICES_HREF_KEY) ?? formatRoute(defaultDevicesRoute());
  /** The menu's links follow the route shown (a link's problem is no part of it). */
  const remember = (route: Route) => {
    if (route.view === 'fleet') sessionStorage.setItem(FLEET_HREF_KEY, formatRoute(route));
    if (route.view === 'devices')
      sessionStorage.setItem(DEVICES_HREF_KEY, formatRoute({ ...route, linkProblem: undefined }));
    fleetLink.href = fleetHref();
    devicesLink.href = devicesHref();
  };
  // The address the shown view was made for. Another one is a navigation on its way (its
  // hashchange not handled yet), which a view's late answer must not write over.
  let shownAddress = location.hash;
  // A view showing other than its link asked (a refused page cursor, a session's current id): the
  // address and the menu say what is shown, so neither leads back to the link.
  const replace = (route: Route) => {
    if (location.hash !== shownAddress) return;
    history.replaceState(history.state, '', formatRoute(route));
    shownAddress = location.hash;
    remember(route);
  };

  const createView = (route: Route): View => {
    switch (route.view) {
      case 'fleet':
        return new FleetView(route, { api, navigate, replace });
      case 'vehicle':
        return new VehicleView(route, { api, navigate, replace, fleetHref });
      case 'charge-points':
        return new ChargePointsView(api);
      case 'charge-point':
        return new ChargePointView(route.chargePointId, api);
      case 'devices':
        return new DevicesView(route, { api, navigate, replace });
    }
  };

  // The charge points entry goes only when the engine says it has no such endpoint (an older
  // engine): an engine down or a key not yet given must not look like a missing feature.
  let chargePointsKnown = false;
  const probeChargePoints = () => {
    if (chargePointsKnown) return;
    // One row is enough to tell: the list itself may be thousands.
    fetchChargePoints(api, { limit: 1 }).then(
      (list) => {
        chargePointsKnown = true;
        chargePointsItem.hidden = list === null;
      },
      () => undefined, // unknown for now (engine down, no key): asked again on the next refresh
    );
  };

  const scroll = createScrollMemory();
  const refresher = startAutoRefresh({
    intervalMs: REFRESH_INTERVAL_MS,
    refresh: () => {
      probeChargePoints();
      return router.current()?.load() ?? Promise.resolve('ok');
    },
    status,
  });
  const router = startViewRouter({
    main,
    createView,
    onNavigated: (route) => {
      refresher.loading();
      shownAddress = location.hash;
      remember(route);
      const section =
        route.view === 'fleet' || route.view === 'vehicle'
          ? 'fleet'
          : route.view === 'devices'
            ? 'devices'
            : 'charge-points';
      for (const link of navLinks) {
        if (link.dataset.nav === section) link.setAttribute('aria-current', 'page');
        else link.removeAttribute('aria-current');
      }
    },
    onLoaded: (outcome) => {
      refresher.loaded(outcome);
      scroll.restore(location.hash);
    },
  });
  probeChargePoints();
}

start();
