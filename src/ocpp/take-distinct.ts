/**
 * Takes waiters from the head of `waiting` (in place, in arrival order) until the next would
 * bring in a key beyond the first `max` distinct ones: one statement for all of them, with a
 * bounded parameter list however many wait.
 */
export function takeDistinct<W>(waiting: W[], keyOf: (waiter: W) => string, max: number): W[] {
  const keys = new Set<string>();
  let count = 0;
  while (count < waiting.length) {
    const key = keyOf(waiting[count]);
    if (!keys.has(key) && keys.size === max) break;
    keys.add(key);
    count += 1;
  }
  return waiting.splice(0, count);
}
