import type { Route } from '../routing/routes';

/**
 * What a view's load did; the header shows when data last arrived. `superseded`: a newer load
 * (a navigation, a refresh) took its place before its answers were shown, so it says nothing of
 * what is on screen.
 */
export type LoadOutcome = 'ok' | 'failed' | 'superseded';

/** One screen of the dashboard, mounted in <main> by the router. */
export interface View {
  readonly root: HTMLElement;
  /** Fetches and renders its data in place; errors become notices, never rejections. */
  load(): Promise<LoadOutcome>;
  /** Takes new parameters (window, page) for the same screen and reloads; null: not this screen. */
  update(route: Route): Promise<LoadOutcome> | null;
  destroy(): void;
}

export interface ViewDeps {
  navigate(route: Route): void;
  /**
   * The address becomes the route's (what the view now shows instead of its link), without a
   * history entry nor a new load; the menu's remembered link follows it.
   */
  replace(route: Route): void;
}
