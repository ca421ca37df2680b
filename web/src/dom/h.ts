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
 * Replaces a container's content keeping what the user did with it: focus goes back to the
 * element with the same `data-focus-key`, and <details data-state-key> stay open, so a refresh
 * under the user's cursor does not lose their place.
 */
export function replaceContent(container: Element, ...children: Children): void {
  const active = document.activeElement;
  const focusKey =
    active && container.contains(active) ? active.getAttribute('data-focus-key') : null;
  const openKeys = new Set(
    [...container.querySelectorAll('details[data-state-key][open]')].map((d) =>
      d.getAttribute('data-state-key'),
    ),
  );
  container.replaceChildren();
  append(container, children);
  for (const details of container.querySelectorAll<HTMLDetailsElement>('details[data-state-key]')) {
    if (openKeys.has(details.getAttribute('data-state-key'))) details.open = true;
  }
  if (focusKey === null) return;
  const again = container.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focusKey)}"]`);
  again?.focus({ preventScroll: true });
}
