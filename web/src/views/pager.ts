import { h, type Child } from '../dom/h';
import { firstPage, nextPage, previousPage, type PagedRoute } from '../routing/routes';

/** A symbol beside a link's words, not read out (a screen reader would name it: "left arrow"). */
const symbol = (text: string) => h('span', { attrs: { 'aria-hidden': 'true' } }, text);

/**
 * "← Previous page · Page n · Next page →" of a list the engine pages by cursor, `route` the page
 * shown and `next` its list's nextCursor; each link is the address of that page (`href`; none:
 * the label stays, greyed). Further back than the address's cursors reach (see MAX_TRAIL), "«
 * First page" leads to the first page before them. The links keep their `data-focus-key` across a
 * refresh.
 */
export function pager<R extends PagedRoute>({
  label,
  route,
  next,
  href,
}: {
  /** The navigation's accessible name ("Fleet report pages"). */
  label: string;
  route: R;
  next: string | null;
  href(route: NoInfer<R>): string;
}): HTMLElement {
  const link = (text: Child[], to: R | null, key: string) =>
    to
      ? h('a', { class: 'pager-link', attrs: { href: href(to), 'data-focus-key': key } }, text)
      : h('span', { class: 'pager-link pager-disabled', attrs: { 'aria-disabled': 'true' } }, text);
  const previous = previousPage(route);
  return h(
    'nav',
    { class: 'pager', attrs: { 'aria-label': label } },
    route.page > 1 && !previous
      ? link([symbol('«'), ' First page'], firstPage(route), 'first')
      : null,
    link([symbol('←'), ' Previous page'], previous, 'prev'),
    h('span', { class: 'pager-page' }, `Page ${route.page}`),
    link(['Next page ', symbol('→')], next === null ? null : nextPage(route, next), 'next'),
  );
}

/** "Go back to the first page." of a page past the end of a list: `href` is the first page's. */
export const firstPageLink = (href: string): HTMLElement =>
  h(
    'span',
    null,
    h('a', { attrs: { href, 'data-focus-key': 'first' } }, 'Go back to the first page'),
    '.',
  );
