/** The engine's answers that say when to send again, for the simulator's requests. */
import { setTimeout as sleep } from 'node:timers/promises';

/** 503 (the engine is busy or a dependency is down) and 429 (the key's rate limit) say when to retry. */
export const asksToWait = (res: Response) => res.status === 503 || res.status === 429;

/** Waits as long as the answer's Retry-After says (1 s without one), its body discarded. */
export async function waitAsAsked(res: Response): Promise<void> {
  await res.body?.cancel();
  const seconds = Number(res.headers.get('retry-after'));
  await sleep((Number.isFinite(seconds) && seconds > 0 ? seconds : 1) * 1000);
}
