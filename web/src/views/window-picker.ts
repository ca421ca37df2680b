import { h } from '../dom/h';
import { formatCount } from '../format/numbers';
import {
  MAX_CUSTOM_WINDOW_HOURS,
  windowBounds,
  type AnalyticsWindow,
} from '../routing/analytics-window';
import { createLocalTimeField, type FieldInstant } from './local-time-field';

export interface WindowChoice {
  window: AnalyticsWindow;
  pageSize?: number;
  /** Why the window shown is not the one the link asked for. */
  linkProblem?: string;
}

export interface WindowPicker {
  readonly root: HTMLFormElement;
  /** Shows a choice made elsewhere (the URL), without calling onChange. */
  show(choice: WindowChoice): void;
}

const PRESETS = [
  { value: '24h', label: 'Last 24 hours' },
  { value: '7d', label: 'Last 7 days' },
  { value: 'custom', label: 'Custom' },
] as const;
type Preset = (typeof PRESETS)[number]['value'];

/**
 * The window a view reports on (last 24 hours, 7 days, or a custom span in local time) and, for
 * the fleet, the page size. Presets apply at once; a custom span on "Apply".
 */
export function createWindowPicker({
  idPrefix,
  pageSizes,
  now,
  onChange,
}: {
  idPrefix: string;
  pageSizes?: readonly number[];
  /** The time a window "ending now" ends by: the engine's, as far as known. */
  now(): number;
  onChange(choice: WindowChoice): void;
}): WindowPicker {
  const id = (name: string) => `${idPrefix}-${name}`;
  const radios = PRESETS.map(({ value, label }) => {
    const input = h('input', {
      attrs: { type: 'radio', name: id('preset'), id: id(value), value },
      on: { change: () => presetChanged() },
    });
    return {
      value,
      element: h(
        'span',
        { class: 'radio' },
        input,
        h('label', { attrs: { for: id(value) } }, label),
      ),
      input,
    };
  });
  const fromField = createLocalTimeField(id('from'), 'From');
  const toField = createLocalTimeField(id('to'), 'To');
  const problem = h('p', {
    class: 'field-problem',
    attrs: { id: id('problem'), 'aria-live': 'polite' },
  });
  const linkProblem = h('p', {
    class: 'field-problem',
    attrs: { id: id('link-problem'), role: 'status', hidden: true },
  });
  const custom = h(
    'div',
    { class: 'custom-window', attrs: { hidden: true } },
    h('label', { attrs: { for: id('from') } }, 'From'),
    fromField.input,
    fromField.which,
    h('label', { attrs: { for: id('to') } }, 'To'),
    toField.input,
    toField.which,
    h('button', { attrs: { type: 'submit' } }, 'Apply'),
    problem,
  );
  const sizeSelect = pageSizes
    ? h(
        'select',
        { attrs: { id: id('page-size') }, on: { change: pageSizeChanged } },
        pageSizes.map((n) => h('option', { attrs: { value: n } }, formatCount(n))),
      )
    : null;
  const root = h(
    'form',
    { class: 'window-picker', attrs: { 'aria-label': 'Report window' } },
    h(
      'fieldset',
      null,
      h('legend', null, 'Window'),
      radios.map((r) => r.element),
    ),
    linkProblem,
    custom,
    sizeSelect
      ? h(
          'div',
          { class: 'page-size' },
          h('label', { attrs: { for: id('page-size') } }, 'Rows per page'),
          sizeSelect,
        )
      : null,
  );

  let current: WindowChoice = { window: { kind: 'last', hours: 24 } };
  const selectedPreset = (): Preset => radios.find((r) => r.input.checked)?.value ?? '24h';
  const pageSize = () => (sizeSelect ? Number(sizeSelect.value) : undefined);

  /** A new page size keeps the window on screen (a custom span not yet applied stays a draft). */
  function pageSizeChanged(): void {
    onChange({ window: current.window, pageSize: pageSize() });
  }

  function emitPreset(preset: Exclude<Preset, 'custom'>): void {
    onChange({ window: { kind: 'last', hours: preset === '7d' ? 168 : 24 }, pageSize: pageSize() });
  }

  function presetChanged(): void {
    const preset = selectedPreset();
    custom.hidden = preset !== 'custom';
    if (preset === 'custom') {
      // Start from the span on screen, so "Custom" is an edit of what is shown.
      const bounds = windowBounds(current.window, now());
      fromField.fill(bounds.from);
      toField.fill(bounds.to);
      fromField.input.focus();
      return;
    }
    emitPreset(preset);
  }

  root.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = customWindow(fromField.read(), toField.read());
    problem.textContent = 'problem' in chosen ? chosen.problem : '';
    if ('window' in chosen) onChange({ window: chosen.window, pageSize: pageSize() });
  });

  return {
    root,
    show(choice) {
      current = choice;
      const { window } = choice;
      const preset: Preset =
        window.kind === 'custom' ? 'custom' : window.hours === 168 ? '7d' : '24h';
      for (const r of radios) r.input.checked = r.value === preset;
      custom.hidden = preset !== 'custom';
      if (window.kind === 'custom') {
        fromField.fill(window.from);
        toField.fill(window.to);
      }
      problem.textContent = '';
      linkProblem.textContent = choice.linkProblem ?? '';
      linkProblem.hidden = !choice.linkProblem;
      if (sizeSelect && choice.pageSize !== undefined) sizeSelect.value = String(choice.pageSize);
    },
  };
}

/** The custom window two fields stand for, or why they stand for none. */
function customWindow(
  from: FieldInstant,
  to: FieldInstant,
): { window: AnalyticsWindow } | { problem: string } {
  if (!from || !to) return { problem: 'Enter both dates.' };
  if ('problem' in from || 'problem' in to) {
    const problems = [from, to].flatMap((f) => ('problem' in f ? [f.problem] : []));
    return { problem: problems.join(' ') };
  }
  const span = Date.parse(to.iso) - Date.parse(from.iso);
  if (span <= 0) return { problem: '"From" must be before "To".' };
  if (span > MAX_CUSTOM_WINDOW_HOURS * 3_600_000)
    return {
      problem: `A window can span at most ${MAX_CUSTOM_WINDOW_HOURS} hours (a month, and the hour a clock change adds).`,
    };
  return { window: { kind: 'custom', from: from.iso, to: to.iso } };
}
