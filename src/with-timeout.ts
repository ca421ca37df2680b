/** The deadline passed; what was asked may still be done (a Redis write sent lands later). */
export class DeadlineError extends Error {
  override name = 'DeadlineError';
}

/** Rejects with a DeadlineError, "<what> took longer than <ms> ms", when `promise` has not settled in time. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
