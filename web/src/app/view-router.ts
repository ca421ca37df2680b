import { formatRoute, parseRoute, type Route } from '../routing/routes';
import type { LoadOutcome, View } from '../views/view';

/**
 * Shows the view of the URL hash in <main>: the same screen takes new parameters in place, another
 * screen replaces it. After a navigation focus moves to the new screen's heading.
 */
export function startViewRouter({
  main,
  createView,
  onNavigated,
  onLoaded,
}: {
  main: HTMLElement;
  createView(route: Route): View;
  onNavigated(route: Route): void;
  /** A navigation's data is on screen (or its error is); never for a superseded load. */
  onLoaded(outcome: LoadOutcome): void;
}): { current(): View | null } {
  let view: View | null = null;
  let navigations = 0;

  const show = (route: Route, byUser: boolean) => {
    const navigation = ++navigations;
    // Only the latest navigation's data restores the scroll: an earlier one's, arriving late,
    // would move a reader who has scrolled the newer page since. A load a refresh superseded has
    // nothing on screen yet: the refresh's own says when it has.
    const loaded = (outcome: LoadOutcome) => {
      if (navigation === navigations && outcome !== 'superseded') onLoaded(outcome);
    };
    onNavigated(route);
    const updated = view?.update(route);
    if (updated) {
      void updated.then(loaded);
      return;
    }
    view?.destroy();
    const next = createView(route);
    view = next;
    main.replaceChildren(next.root);
    if (byUser) next.root.querySelector<HTMLElement>('h1')?.focus({ preventScroll: true });
    void next.load().then(loaded);
  };

  /**
   * An empty or unknown hash shows the fleet, a devices link with an unknown kind or filter the
   * default one, a window that cannot be shown the default window; the URL says what is shown,
   * without a history entry (the link's problem is said on the page once, see Route's linkProblem
   * and windowProblem: a reload or a shared copy does not repeat it).
   */
  const parseAndCanonicalize = (): Route => {
    const route = parseRoute(location.hash);
    const problem =
      ('linkProblem' in route && route.linkProblem) ||
      ('windowProblem' in route && route.windowProblem);
    if (!location.hash.startsWith('#/') || problem)
      history.replaceState(history.state, '', formatRoute(route));
    return route;
  };
  window.addEventListener('hashchange', () => show(parseAndCanonicalize(), true));
  show(parseAndCanonicalize(), false);
  return { current: () => view };
}
