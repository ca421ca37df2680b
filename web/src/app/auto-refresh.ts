import { formatDateTimeSeconds } from '../format/dates';
import type { LoadOutcome } from '../views/view';

/**
 * Reloads the current view's data every `intervalMs` while the tab is visible (and at once when
 * it becomes visible again after a pause), never two at a time; the status line says when data
 * last arrived.
 */
export function startAutoRefresh({
  intervalMs,
  refresh,
  status,
}: {
  intervalMs: number;
  refresh(): Promise<LoadOutcome>;
  status: HTMLElement;
}): { loaded(outcome: LoadOutcome): void; loading(): void } {
  let running = false;
  let lastAttempt = Date.now();
  const every = `refreshes every ${Math.round(intervalMs / 1000)} s`;

  /** A superseded load's screen is still on its way: the newer load says when it arrives. */
  const loaded = (outcome: LoadOutcome) => {
    if (outcome === 'superseded') return;
    const at = formatDateTimeSeconds(new Date());
    status.textContent =
      outcome === 'ok' ? `Updated ${at} · ${every}` : `Refresh failed ${at} · ${every}`;
    status.classList.toggle('refresh-failed', outcome === 'failed');
  };
  /** A navigation's data is on its way: when the last screen's arrived says nothing of it. */
  const loading = () => {
    status.textContent = `Loading… · ${every}`;
    status.classList.remove('refresh-failed');
  };

  const tick = async () => {
    if (running || document.hidden) return;
    running = true;
    lastAttempt = Date.now();
    try {
      loaded(await refresh());
    } finally {
      running = false;
    }
  };

  setInterval(() => void tick(), intervalMs);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && Date.now() - lastAttempt >= intervalMs) void tick();
  });
  return { loaded, loading };
}
