import { keyTextProblem, type KeyPromptReason } from '../api/api-client';
import { h } from '../dom/h';

const REASONS: Record<KeyPromptReason, string> = {
  required: 'This engine requires an API key with the read scope.',
  refused: 'The key was refused: the engine does not know it. Check it and enter it again.',
  insufficient_scope: 'The key was refused: it lacks the read scope. Enter a key that has it.',
  several_keys:
    'The key was refused: the engine read it as several keys (400 ambiguous_api_key). Enter one key.',
  too_long:
    'The key was refused: it is too long for the engine to read (431 headers_too_large). Enter the key alone.',
};

/**
 * A modal dialog asking for an API key. Requests that fail at the same time share one prompt.
 * Resolves with the key, or null when the user cancels (Escape or the Cancel button).
 */
export function createKeyDialog(
  host: HTMLElement,
): (reason: KeyPromptReason) => Promise<string | null> {
  const message = h('p', { class: 'key-message', attrs: { id: 'key-message' } });
  const input = h('input', {
    attrs: {
      id: 'key-input',
      type: 'password',
      autocomplete: 'off',
      spellcheck: 'false',
      required: true,
      'aria-describedby': 'key-message key-hint',
    },
  });
  const cancel = h('button', { class: 'button-secondary', attrs: { type: 'button' } }, 'Cancel');
  const form = h(
    'form',
    null,
    h('h2', { attrs: { id: 'key-title' } }, 'API key needed'),
    message,
    h('label', { attrs: { for: 'key-input' } }, 'API key (read scope)'),
    input,
    h(
      'p',
      { class: 'hint', attrs: { id: 'key-hint' } },
      'Kept for this browser tab only and sent as Authorization: Bearer.',
    ),
    h(
      'div',
      { class: 'dialog-actions' },
      cancel,
      h('button', { attrs: { type: 'submit' } }, 'Use key'),
    ),
  );
  const dialog = h(
    'dialog',
    { class: 'key-dialog', attrs: { 'aria-labelledby': 'key-title' } },
    form,
  );
  host.appendChild(dialog);

  let pending: Promise<string | null> | null = null;
  let settle: (key: string | null) => void = () => undefined;

  const finish = (key: string | null) => {
    if (dialog.open) dialog.close();
    // The key is kept by the store alone, not in a field left in the page.
    input.value = '';
    // Asked for at the page's load, the dialog gives focus back to nothing: the screen's heading
    // takes it, as after a navigation, so a keyboard reader goes on from the content.
    const focused = document.activeElement;
    if (!focused || focused === document.body || dialog.contains(focused))
      document.querySelector<HTMLElement>('main h1')?.focus({ preventScroll: true });
    pending = null;
    settle(key);
  };
  form.addEventListener('submit', (event) => {
    // Handled here, never submitted: the page's CSP allows no form action.
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    const problem = keyTextProblem(key);
    if (problem) {
      message.textContent = problem;
      message.classList.add('key-message-refused');
      message.setAttribute('role', 'alert');
      input.focus();
      return;
    }
    finish(key);
  });
  cancel.addEventListener('click', () => finish(null));
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    finish(null);
  });

  return (reason) => {
    if (pending) return pending;
    pending = new Promise((resolve) => {
      settle = resolve;
    });
    message.textContent = REASONS[reason];
    message.classList.toggle('key-message-refused', reason !== 'required');
    message.setAttribute('role', reason === 'required' ? 'status' : 'alert');
    input.value = '';
    dialog.showModal();
    input.focus();
    return pending;
  };
}
