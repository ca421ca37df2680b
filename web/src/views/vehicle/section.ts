import { ApiError } from '../../api/api-client';
import { h, replaceContent, type Child } from '../../dom/h';
import { formatDateTimeSeconds } from '../../format/dates';
import { errorNotice, loadingNotice, staleNotice } from '../notices';

/** The engine answered 404 for the vehicle (no readings, no mapping), not for a missing route. */
export const isNotFound = (err: unknown): err is ApiError =>
  err instanceof ApiError && err.status === 404 && !err.routeMissing;

/**
 * A titled part of the vehicle view that renders its own data or its own error: one failing
 * request leaves the others on screen. A failed refresh keeps the data, marked as stale.
 */
export class Section {
  readonly root: HTMLElement;
  protected readonly body = h('div', { class: 'section-body' });
  private readonly feedback = h('div', { class: 'feedback' });
  private shownAt: Date | null = null;

  constructor(
    id: string,
    title: string,
    private readonly what: string,
  ) {
    this.root = h(
      'section',
      { class: 'panel', attrs: { 'aria-labelledby': `${id}-title`, id } },
      h('h2', { attrs: { id: `${id}-title` } }, title),
      this.feedback,
      this.body,
    );
    // Until its first answer: an engine slow to answer must not look like one with nothing to say.
    replaceContent(this.body, loadingNotice(what));
  }

  protected show(...children: (Child | Child[])[]): void {
    this.shownAt = new Date();
    this.feedback.replaceChildren();
    replaceContent(this.body, ...children);
  }

  showError(err: unknown): void {
    if (this.shownAt) {
      replaceContent(
        this.feedback,
        staleNotice(this.what, err, formatDateTimeSeconds(this.shownAt)),
      );
    } else {
      replaceContent(this.body, errorNotice(this.what, err));
    }
  }

  /**
   * New parameters (another window): what is shown no longer answers them, so it goes, and the
   * section says what it is loading instead (`forWhat`: "for the last 7 days"). Kept until the
   * answer, a slow engine's old figures would pass for the new window's.
   */
  forget(forWhat: string): void {
    this.shownAt = null;
    this.feedback.replaceChildren();
    replaceContent(this.body, loadingNotice(`${this.what} ${forWhat}`));
  }
}
