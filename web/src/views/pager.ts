import { h } from '../dom/h';

/**
 * "← Previous page · Page n · Next page →" of a list the engine pages by cursor; each link is
 * the address of that page (null: there is none, the label stays, greyed). `first`, given, leads
 * to the first page before them. The links keep their `data-focus-key` across a refresh.
 */
export function pager({
  label,
  page,
  previous,
  next,
  first = null,
}: {
  /** The navigation's accessible name ("Fleet report pages"). */
  label: string;
  page: number;
  previous: string | null;
  next: string | null;
  first?: string | null;
}): HTMLElement {
  const link = (text: string, href: string | null, key: string) =>
    href
      ? h('a', { class: 'pager-link', attrs: { href, 'data-focus-key': key } }, text)
      : h('span', { class: 'pager-link pager-disabled', attrs: { 'aria-disabled': 'true' } }, text);
  return h(
    'nav',
    { class: 'pager', attrs: { 'aria-label': label } },
    first ? link('« First page', first, 'first') : null,
    link('← Previous page', previous, 'prev'),
    h('span', { class: 'pager-page' }, `Page ${page}`),
    link('Next page →', next, 'next'),
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
