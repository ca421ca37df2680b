import { h } from '../dom/h';
import { formatOffset, instantsAtLocalTime, toDateTimeLocalValue } from '../format/dates';

/** What a field stands for: an instant (RFC 3339), why it is none, or null when it is empty. */
export type FieldInstant = { iso: string } | { problem: string } | null;

export interface LocalTimeField {
  readonly input: HTMLInputElement;
  /** Where the field asks which of a repeated hour's two times it means (hidden otherwise). */
  readonly which: HTMLElement;
  /** Shows an instant; read() gives it back exactly while the field's text is unchanged. */
  fill(iso: string): void;
  read(): FieldInstant;
}

const minuteOf = (iso: string) => Math.floor(Date.parse(iso) / 60_000) * 60_000;

/**
 * A local date and time (`<input type="datetime-local">`), minutes only. Filled with an instant,
 * it stands for that very instant until its text is edited: the field shows neither seconds nor
 * the offset, so reading its text back would drop a link's seconds, and in the hour the clocks go
 * back would take the other of its two times. A time typed in that hour offers the choice of the
 * two; a time the clocks skip is refused.
 */
export function createLocalTimeField(id: string, name: string): LocalTimeField {
  const input = h('input', { attrs: { type: 'datetime-local', id, required: true } });
  const choice = h('select', { attrs: { id: `${id}-which` } });
  const choiceLabel = h('label', { attrs: { for: `${id}-which` } });
  const which = h('span', { class: 'repeated-time', attrs: { hidden: true } }, choiceLabel, choice);
  let filled: { text: string; iso: string } | null = null;

  /** The choice of the two instants of a repeated time, `preferred` (ms) selected, else the first. */
  const offerChoice = (preferred?: number) => {
    const instants = instantsAtLocalTime(input.value);
    which.hidden = instants.length < 2;
    if (instants.length < 2) return;
    const time = input.value.slice(11, 16);
    choiceLabel.textContent = `${name}: ${time} occurs twice (the clocks go back), take`;
    choice.replaceChildren(
      ...instants.map((d, i) =>
        h('option', { attrs: { value: i } }, `the ${['first', 'second'][i]}, ${formatOffset(d)}`),
      ),
    );
    choice.value = String(Math.max(0, instants.map((d) => d.getTime()).indexOf(preferred ?? 0)));
  };
  input.addEventListener('input', () => offerChoice());
  // A choice made is the field's meaning now, not the instant it was filled with.
  choice.addEventListener('change', () => (filled = null));

  return {
    input,
    which,
    fill(iso) {
      input.value = toDateTimeLocalValue(new Date(iso));
      filled = { text: input.value, iso };
      offerChoice(minuteOf(iso));
    },
    read() {
      if (!input.value) return null;
      if (filled && input.value === filled.text) return { iso: filled.iso };
      const instants = instantsAtLocalTime(input.value);
      if (instants.length === 0) {
        const asTyped = input.value.slice(0, 16).replace('T', ' ');
        return {
          problem: `${name}: ${asTyped} does not exist here (the clocks skip that hour). Enter another time.`,
        };
      }
      const chosen = instants.length > 1 ? instants[Number(choice.value)] : instants[0];
      return { iso: (chosen ?? instants[0]).toISOString() };
    },
  };
}
