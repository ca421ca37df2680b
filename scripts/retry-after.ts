/** The engine's answers that say when to send again, for the simulator's requests. */
import { setTimeout as sleep } from 'node:timers/promises';

/** Longer than this is not a pause to wait out in a run (a key limited to a request a day). */
export const MAX_WAIT_S = 60;

/** 503 (the engine is busy or a dependency is down) and 429 (the key's rate limit) say when to retry. */
export const asksToWait = (res: Response) => res.status === 503 || res.status === 429;

/**
 * Waits as long as the answer's Retry-After says (1 s without one), its body discarded; refuses a
 * wait beyond MAX_WAIT_S, naming it, rather than sleeping for days (or, past setTimeout's range,
 * not at all).
 */
export async function waitAsAsked(res: Response): Promise<void> {
  await res.body?.cancel();
  const given = Number(res.headers.get('retry-after'));
  const seconds = Number.isFinite(given) && given > 0 ? given : 1;
  if (seconds > MAX_WAIT_S) {
    throw new Error(
      `the engine answered ${res.status} asking to retry after ${seconds} s (more than ${MAX_WAIT_S} s): ${res.status === 429 ? "the key's rate limit (RATE_LIMIT_PER_S) is too low for this run" : 'it is not ready'}`,
    );
  }
  await sleep(seconds * 1000);
}
