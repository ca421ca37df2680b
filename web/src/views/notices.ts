import { ApiError, EngineUnreachableError } from '../api/api-client';
import { h } from '../dom/h';
import { localizeInstants } from '../format/dates';

/** `loading`: what stands in a place until its first answer, told apart from an answer. */
export type NoticeKind = 'empty' | 'error' | 'info' | 'loading';

/** A message where data would be: says what is missing or what went wrong, never a blank. */
export function notice(kind: NoticeKind, title: string, detail?: string | Node): HTMLElement {
  return h(
    'div',
    {
      class: `notice notice-${kind}`,
      attrs: { role: kind === 'error' ? 'alert' : 'status' },
    },
    h('p', { class: 'notice-title' }, title),
    detail ? h('p', { class: 'notice-detail' }, detail) : null,
  );
}

/** What stands where `what` will be shown, until its first answer ("Loading the fleet report…"). */
export const loadingNotice = (what: string): HTMLElement => notice('loading', `Loading ${what}…`);

/** The engine's warnings on a report or a session, as it wrote them (instants in local time); null for none. */
export const warningList = (warnings: readonly string[]): HTMLElement | null =>
  warnings.length === 0
    ? null
    : h(
        'ul',
        { class: 'warnings', attrs: { 'aria-label': 'Warnings' } },
        warnings.map((w) => h('li', null, localizeInstants(w))),
      );

/** What an error means to the person looking at the page. */
export function describeError(err: unknown): string {
  if (err instanceof EngineUnreachableError) {
    return `${err.message}: it is down or hung, or the network is. The page tries again every 30 s.`;
  }
  if (err instanceof ApiError) {
    if (err.status === 503) {
      const retry = err.retryAfterS
        ? ` (the engine suggests retrying in ${err.retryAfterS} s)`
        : '';
      return `The engine is unavailable (503 ${err.code}): ${err.message}${retry}. The page tries again every 30 s.`;
    }
    // The answers that refuse a key (see the ApiClient's keyRefusal), once the prompt is declined.
    const keyRefused =
      err.status === 401 ||
      err.status === 403 ||
      err.status === 431 ||
      err.code === 'ambiguous_api_key';
    if (keyRefused) {
      return `No accepted API key (${err.status} ${err.code}): ${err.message}. Reload the page to enter a key.`;
    }
    return `${err.message} (${err.status} ${err.code})`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The engine down, hung or unavailable: what such a notice says holds only until it answers. */
const isOutage = (err: unknown): boolean =>
  err instanceof EngineUnreachableError || (err instanceof ApiError && err.status === 503);

/**
 * `data-outage` marks a notice of an outage (see replaceOutageNotices); `stillShown`, of a stale
 * one, says what its data on screen are once the outage no longer holds.
 */
function markedIfOutage(element: HTMLElement, err: unknown, stillShown?: string): HTMLElement {
  if (isOutage(err)) {
    element.setAttribute('data-outage', '');
    if (stillShown) element.setAttribute('data-still-shown', stillShown);
  }
  return element;
}

export const errorNotice = (what: string, err: unknown): HTMLElement =>
  markedIfOutage(notice('error', `Could not load ${what}`, describeError(err)), err);

/** Shown above data that is still on screen when a refresh failed: stale, but not gone. */
export const staleNotice = (what: string, err: unknown, since: string): HTMLElement =>
  markedIfOutage(
    notice(
      'error',
      `Could not refresh ${what}; showing the data loaded at ${since}`,
      describeError(err),
    ),
    err,
    `Showing ${what} loaded at ${since}`,
  );

/**
 * The engine has answered asking for a key: the notices under `root` saying it was out no
 * longer hold. One notice, in place of the first, says what the page waits for instead until the
 * views redraw (the key given or declined); a stale one's data say when they were loaded, the
 * others go. Left, they would blame the engine behind the prompt; one each, a screen reader
 * would read the same words for each section.
 */
export function replaceOutageNotices(root: ParentNode): void {
  const outages = [...root.querySelectorAll('[data-outage]')];
  if (outages.length === 0) return;
  if (!root.querySelector('[data-waiting-for-key]')) {
    const waiting = notice(
      'info',
      'Waiting for an API key',
      'The engine answers again and asks for a key with the read scope: enter one in the prompt.',
    );
    waiting.setAttribute('data-waiting-for-key', '');
    outages[0].before(waiting);
  }
  for (const outage of outages) {
    const stillShown = outage.getAttribute('data-still-shown');
    // Not a live region: the one "Waiting for an API key" is what is read out.
    if (stillShown)
      outage.replaceWith(
        h('div', { class: 'notice notice-info' }, h('p', { class: 'notice-title' }, stillShown)),
      );
    else outage.remove();
  }
}
