import type { ErrorBody } from './types';

/** An answer of the engine other than 2xx, with its `error` code and sentence. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The engine's fallback 404: the endpoint itself does not exist (yet), not the resource. */
  get routeMissing(): boolean {
    return this.status === 404 && this.code === 'not_found' && /^No route for /.test(this.message);
  }
}

/**
 * How long one request may take: an engine (or a proxy) that never answers would otherwise hold
 * the view's refresh, and every refresh after it, for good.
 */
export const REQUEST_TIMEOUT_MS = 20_000;

/** No HTTP answer at all, or none in time: the engine is down or hung, or the network is. */
export class EngineUnreachableError extends Error {
  constructor(
    readonly url: string,
    timedOut = false,
  ) {
    super(
      timedOut
        ? `The engine at ${url} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`
        : `The engine could not be reached at ${url}`,
    );
    this.name = 'EngineUnreachableError';
  }
}

/** What an API key is made of (printable ASCII): anything else cannot go in a header. */
export const isKeyText = (key: string): boolean => /^[\x21-\x7e]+$/.test(key);

export type KeyPromptReason = 'required' | 'refused' | 'insufficient_scope';

export interface KeyStore {
  get(): string | null;
  set(key: string): void;
}

export type Query = Record<string, string | number | undefined>;

/**
 * GETs JSON from the engine (same origin). With a key in the store it sends
 * `Authorization: Bearer`; a 401 (or a 403 for the missing read scope) asks for a key and retries.
 */
export class ApiClient {
  private declined = false;

  constructor(
    private readonly deps: {
      keys: KeyStore;
      /** Resolves with the key the user entered, or null when they declined. */
      promptForKey: (reason: KeyPromptReason) => Promise<string | null>;
      fetch?: typeof fetch;
    },
  ) {}

  async get<T>(path: string, query: Query = {}): Promise<T> {
    const url = withQuery(path, query);
    for (;;) {
      const key = this.deps.keys.get();
      const res = await this.send(url, key);
      if (res.ok) return (await res.json()) as T;
      const error = await toApiError(res);
      const refusedKey = res.status === 401 || error.code === 'insufficient_scope';
      if (!refusedKey) throw error;
      // Another request may already have brought a new key while this one was in flight.
      if (this.deps.keys.get() !== key) continue;
      // Once declined, the page stops asking (every refresh would) until it is reloaded.
      if (this.declined) throw error;
      const reason: KeyPromptReason =
        res.status === 403 ? 'insufficient_scope' : key ? 'refused' : 'required';
      const entered = await this.deps.promptForKey(reason);
      if (entered === null) {
        this.declined = true;
        throw error;
      }
      this.deps.keys.set(entered);
    }
  }

  private async send(url: string, key: string | null): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    // A key no header can carry (kept from before keys were checked) is not sent: the engine
    // then asks for one.
    if (key && isKeyText(key)) headers.authorization = `Bearer ${key}`;
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    try {
      return await (this.deps.fetch ?? fetch)(url, { headers, cache: 'no-store', signal });
    } catch {
      throw new EngineUnreachableError(new URL(url, location.href).origin, signal.aborted);
    }
  }
}

function withQuery(path: string, query: Query): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function toApiError(res: Response): Promise<ApiError> {
  let body: Partial<ErrorBody> | null = null;
  try {
    body = (await res.json()) as Partial<ErrorBody>;
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  const retryAfter = Number(res.headers.get('retry-after'));
  return new ApiError(
    res.status,
    typeof body?.error === 'string' ? body.error : `http_${res.status}`,
    typeof body?.message === 'string' ? body.message : `${res.status} ${res.statusText}`.trim(),
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
  );
}

/** An endpoint that may not be installed yet: null when its route is missing. */
export async function unlessRouteMissing<T>(request: Promise<T>): Promise<T | null> {
  try {
    return await request;
  } catch (err) {
    if (err instanceof ApiError && err.routeMissing) return null;
    throw err;
  }
}
