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
 * The engine's `DB_STATEMENT_TIMEOUT_MS` default: the longest a database statement may run there.
 * Named once for the page, which cannot read an engine's own setting; test/browser/
 * engine-rules.test.ts holds it to the engine's declaration.
 */
export const ENGINE_STATEMENT_TIMEOUT_MS = 30_000;

/**
 * How long the page waits for an answer before calling the engine hung: an engine (or a proxy)
 * that never answers would otherwise hold the view's refresh, and every refresh after it, for
 * good. Never shorter than the engine may take: it bounds each database statement, not a
 * request, and its slowest reads run several in turn (the fleet's flagged sessions before they
 * are built: 37.8 s at 1,370 vehicles), so the page allows three statements' time; a statement
 * that runs out of time the engine answers itself (503 `database_timeout`). Given up sooner, the
 * engine would go on with the abandoned request while the next refresh asked for it again.
 */
export const REQUEST_TIMEOUT_MS = 3 * ENGINE_STATEMENT_TIMEOUT_MS;

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

/**
 * The longest text taken as a key. The engine's own are far shorter (`npm run key`'s: 47
 * characters, a charge point's 40); API_KEYS admits any text by its hash, so this leaves room for
 * keys made elsewhere, and refuses only a paste no engine reads (its headers end at 16 KB).
 */
export const MAX_KEY_LENGTH = 1024;

/** Why `key` can never be an API key, in words for the person who pasted it; null if it may be. */
export function keyTextProblem(key: string): string | null {
  // A key (a token68) holds none: the engine reads one as several keys.
  if (key.includes(','))
    return 'That is not a key: it holds a comma, as two keys pasted together do. Paste one key.';
  if (!isKeyText(key))
    return 'That is not a key: it holds a character no API key has (an invisible one, perhaps, copied with it). Paste the key alone.';
  if (key.length > MAX_KEY_LENGTH)
    return `That is not a key: it is ${key.length.toLocaleString('en-US')} characters long, and a key is at most ${MAX_KEY_LENGTH.toLocaleString('en-US')}. Paste the key alone.`;
  return null;
}

/**
 * Why the page asks for a key: none yet, or the engine refused the one sent (unknown, without the
 * read scope, read as several keys, too long for its headers).
 */
export type KeyPromptReason =
  'required' | 'refused' | 'insufficient_scope' | 'several_keys' | 'too_long';

export interface KeyStore {
  get(): string | null;
  set(key: string): void;
  /** Forgets the key: one the engine refused would be sent again after a reload. */
  clear(): void;
}

/**
 * Whether an answer refuses the key itself (as KeyPromptReason says why), or null: an answer
 * about anything else. A 400 or 431 is the key's only when one was sent.
 */
function keyRefusal(status: number, error: ApiError, key: string | null): KeyPromptReason | null {
  if (status === 401) return key ? 'refused' : 'required';
  if (error.code === 'insufficient_scope') return 'insufficient_scope';
  if (!key || !isKeyText(key)) return null; // none sent (see send)
  if (error.code === 'ambiguous_api_key') return 'several_keys';
  if (status === 431) return 'too_long';
  return null;
}

export type Query = Record<string, string | number | undefined>;

/**
 * GETs JSON from the engine (same origin). With a key in the store it sends
 * `Authorization: Bearer`; an answer refusing the key (see keyRefusal) drops it, asks for one and
 * retries.
 * A URL already in flight is not asked again: the caller waits for that request's answer (a
 * refresh of a view whose last request the engine is still working on). Callers share the
 * answer: they read it, never change it.
 */
export class ApiClient {
  private declined = false;
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** The engine's clock less the browser's (ms), as the last answer's Date header put it. */
  private clockOffsetMs: number | null = null;

  constructor(
    private readonly deps: {
      keys: KeyStore;
      /** Resolves with the key the user entered, or null when they declined. */
      promptForKey: (reason: KeyPromptReason) => Promise<string | null>;
      fetch?: typeof fetch;
    },
  ) {}

  /**
   * The engine's time now, as its last answer's Date header gave it; null before any answer
   * carried one. The header's whole seconds put it never ahead of the engine: a window "ending
   * now" is the engine's, and the browser's clock may be off by any amount.
   */
  engineNow(): number | null {
    return this.clockOffsetMs === null ? null : Date.now() + this.clockOffsetMs;
  }

  get<T>(path: string, query: Query = {}): Promise<T> {
    const url = withQuery(path, query);
    const pending = this.inFlight.get(url);
    if (pending) return pending as Promise<T>;
    const answer = this.fetchJson<T>(url).finally(() => this.inFlight.delete(url));
    this.inFlight.set(url, answer);
    return answer;
  }

  private async fetchJson<T>(url: string): Promise<T> {
    for (;;) {
      const key = this.deps.keys.get();
      const answer = await this.send(url, key);
      if (answer.ok) return answer.body as T;
      const { status, error } = answer;
      const reason = keyRefusal(status, error, key);
      if (!reason) throw error;
      // Another request may already have brought a new key while this one was in flight.
      if (this.deps.keys.get() !== key) continue;
      if (key) this.deps.keys.clear();
      // Once declined, the page stops asking (every refresh would) until it is reloaded.
      if (this.declined) throw error;
      const entered = await this.deps.promptForKey(reason);
      if (entered === null) {
        this.declined = true;
        throw error;
      }
      this.deps.keys.set(entered);
    }
  }

  /** One request and its body, within REQUEST_TIMEOUT_MS. */
  private async send(
    url: string,
    key: string | null,
  ): Promise<{ ok: true; body: unknown } | { ok: false; status: number; error: ApiError }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    // A key no header can carry (kept from before keys were checked) is not sent: the engine
    // then asks for one.
    if (key && isKeyText(key)) headers.authorization = `Bearer ${key}`;
    // A timer rather than AbortSignal.timeout, which the browser tests' clock would not drive.
    const deadline = new AbortController();
    const { signal } = deadline;
    const timer = setTimeout(() => deadline.abort(), REQUEST_TIMEOUT_MS);
    const unreachable = () =>
      new EngineUnreachableError(new URL(url, location.href).origin, signal.aborted);
    try {
      let res: Response;
      try {
        res = await (this.deps.fetch ?? fetch)(url, { headers, cache: 'no-store', signal });
      } catch {
        throw unreachable();
      }
      this.noteEngineClock(res);
      if (!res.ok) return { ok: false, status: res.status, error: await toApiError(res) };
      try {
        return { ok: true, body: await res.json() };
      } catch (err) {
        if (signal.aborted) throw unreachable();
        throw err;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private noteEngineClock(res: Response): void {
    const date = Date.parse(res.headers.get('date') ?? '');
    if (!Number.isNaN(date)) this.clockOffsetMs = date - Date.now();
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
