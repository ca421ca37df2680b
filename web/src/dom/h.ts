/**
 * A tiny element builder. Text always goes in as text nodes (never HTML), so engine data cannot
 * inject markup; and no `style` attribute is ever set, which the page's CSP would refuse.
 */
export type Child = Node | string | number | null | undefined | false;
type Children = (Child | Child[])[];
type AttrValue = string | number | boolean | null | undefined;

export interface Props {
  class?: string;
  /** Attributes by name (`aria-*`, `data-*`, `href`, ...); `false`/`null`/`undefined` omit one. */
  attrs?: Record<string, AttrValue>;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (event: HTMLElementEventMap[K]) => void }>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Children
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props?.class) el.className = props.class;
  for (const [name, value] of Object.entries(props?.attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const [type, listener] of Object.entries(props?.on ?? {})) {
    el.addEventListener(type, listener as EventListener);
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Children): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/**
 * Keeps how far `region` (with a `data-scroll-key`) is scrolled sideways in an attribute, for
 * replaceContent to scroll its successor as far.
 */
export function keepScrollLeft(region: HTMLElement): void {
  region.addEventListener(
    'scroll',
    () => region.setAttribute('data-scroll-left', String(region.scrollLeft)),
    { passive: true },
  );
}

/**
 * What the focused element is, to find it again in new content: its `data-focus-key`, else its
 * kind, link, label and text (a table's scroll region, a <summary>, a link without a key).
 */
function focusSignature(element: Element): string {
  const key = element.getAttribute('data-focus-key');
  if (key !== null) return `key:${key}`;
  const text = element.tagName === 'DIV' ? '' : (element.textContent ?? '').trim();
  return [element.tagName, element.getAttribute('href'), element.getAttribute('aria-label'), text]
    .map((part) => part ?? '')
    .join('|');
}

/**
 * Replaces a container's content keeping what the user did with it: focus goes back to the
 * element that matches the focused one (see focusSignature), <details data-state-key> stay open,
 * and a region with `data-scroll-key` keeps how far it was scrolled sideways (keepScrollLeft),
 * so a refresh under the user's cursor does not lose their place.
 */
export function replaceContent(container: Element, ...children: Children): void {
  const active = document.activeElement;
  const focused = active && active !== container && container.contains(active) ? active : null;
  const signature = focused ? focusSignature(focused) : null;
  const openKeys = new Set(
    [...container.querySelectorAll('details[data-state-key][open]')].map((d) =>
      d.getAttribute('data-state-key'),
    ),
  );
  // Read from the attribute its scroll events keep (see keepScrollLeft), not from scrollLeft: a
  // layout forced here moved the page's own scroll position once the content was replaced.
  const scrolled = new Map(
    [...container.querySelectorAll('[data-scroll-key][data-scroll-left]')].map((region) => [
      region.getAttribute('data-scroll-key'),
      Number(region.getAttribute('data-scroll-left')),
    ]),
  );
  container.replaceChildren();
  append(container, children);
  for (const details of container.querySelectorAll<HTMLDetailsElement>('details[data-state-key]')) {
    if (openKeys.has(details.getAttribute('data-state-key'))) details.open = true;
  }
  for (const region of container.querySelectorAll('[data-scroll-key]')) {
    const left = scrolled.get(region.getAttribute('data-scroll-key'));
    if (left) region.scrollLeft = left;
  }
  if (!focused || signature === null) return;
  const again = [...container.querySelectorAll<HTMLElement>(focused.tagName)].find(
    (element) => focusSignature(element) === signature,
  );
  again?.focus({ preventScroll: true });
}
