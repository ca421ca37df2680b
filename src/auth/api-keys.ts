import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { CHARGE_POINT_ID, CHARGE_POINT_ID_RULE } from '../ocpp/charge-point-id';

/** What a key may do; `charge-point` admits an OCPP charge point whose id is the key's name. */
export const SCOPES = ['ingest', 'read', 'admin', 'charge-point'] as const;
export type Scope = (typeof SCOPES)[number];

/** A configured client: its name, what it may do, and the SHA-256 of its key (never the key). */
export interface ApiKey {
  name: string;
  scopes: Scope[];
  hash: Buffer;
}

export const hashKey = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/** A key's name, as API_KEYS entries and `npm run key` take it. */
export const API_KEY_NAME = /^[\w.-]{1,64}$/;
export const API_KEY_NAME_RULE = '1-64 characters from A-Z a-z 0-9 _ . -';

/**
 * Scopes joined with `+` (`ingest+read`), as API_KEYS and `npm run key` take them: the scopes, or
 * what is wrong with them (an unknown one, one given twice).
 */
export function parseScopes(text: string): { scopes: Scope[]; problem: string | null } {
  const scopes = text.split('+');
  const unknown = scopes.filter((s) => !SCOPES.includes(s as Scope));
  if (unknown.length > 0) {
    const named = unknown.map((s) => (s === '' ? "'' (one + between scopes)" : s)).join(', ');
    return { scopes: [], problem: `unknown scope ${named} (use ${SCOPES.join(', ')})` };
  }
  const twice = scopes.find((s, i) => scopes.indexOf(s) !== i);
  if (twice) return { scopes: [], problem: `scope ${twice} is given twice` };
  return { scopes: scopes as Scope[], problem: null };
}

/**
 * Parses API_KEYS: comma-separated `name:scopes:sha256hex` entries, scopes joined with `+`.
 * Returns the keys and the problems found (each naming the entry and what is wrong).
 */
export function parseApiKeys(text: string): { keys: ApiKey[]; problems: string[] } {
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  entries.forEach((entry, i) => {
    const [name, scopeText, hex, ...rest] = entry.split(':');
    const where = `API_KEYS entry ${i + 1}${name ? ` (${name})` : ''}`;
    if (rest.length > 0 || !name || !scopeText || !hex) {
      problems.push(
        `${where}: expected name:scopes:sha256hex (scopes joined with +, entries with commas)`,
      );
      return;
    }
    if (!API_KEY_NAME.test(name)) problems.push(`${where}: the name must be ${API_KEY_NAME_RULE}`);
    const { scopes, problem } = parseScopes(scopeText);
    if (problem) problems.push(`${where}: ${problem}`);
    if (!/^[0-9a-f]{64}$/i.test(hex))
      problems.push(`${where}: the hash must be 64 hex characters (the SHA-256 of the key)`);
    if (keys.some((k) => k.name === name)) problems.push(`${where}: the name is used twice`);
    const hash = Buffer.from(hex, 'hex');
    // One key would be one of the two names, and have only its scopes.
    const same = keys.find((k) => k.hash.equals(hash));
    if (same) {
      problems.push(
        `${where}: the same key as ${same.name} (one key has one name; join the scopes with +)`,
      );
    }
    keys.push({ name, scopes, hash });
  });
  return { keys, problems };
}

/**
 * Why `npm run key` cannot make a key of these scopes under this name, or null: a charge point's
 * key is named after the charge point, so its name must be one (else the key is made, but never
 * lets it connect). API_KEYS takes such an entry (its other scopes admit as before).
 */
export function keyNameProblem(name: string, scopes: readonly Scope[]): string | null {
  if (!API_KEY_NAME.test(name)) return `the name must be ${API_KEY_NAME_RULE}`;
  if (scopes.includes('charge-point') && !CHARGE_POINT_ID.test(name))
    return `a charge-point key is named after its charge point, whose id is ${CHARGE_POINT_ID_RULE}`;
  return null;
}

/** Finds the key's entry, comparing every hash in constant time (no early exit on a match). */
export function findKey(keys: ApiKey[], presented: string): ApiKey | null {
  const hash = hashKey(presented);
  let found: ApiKey | null = null;
  for (const key of keys) {
    if (key.hash.length === hash.length && timingSafeEqual(key.hash, hash)) found = key;
  }
  return found;
}

/**
 * A charge point's key as its Basic password may carry it: as the key's text (its hex digits in
 * either case), or as the 16-20 bytes those digits stand for, which OCPP 1.6's Security Whitepaper
 * has a charger send of its AuthorizationKey (the conformance test TC_085_CS checks that form).
 */
export function findChargePointKey(keys: ApiKey[], password: Buffer): ApiKey | null {
  const text = password.toString('utf8');
  const forms = [text];
  if (/^[0-9A-F]{32,40}$/i.test(text)) forms.push(text.toLowerCase());
  if (password.length >= 16 && password.length <= 20) forms.push(password.toString('hex'));
  for (const form of new Set(forms)) {
    const key = findKey(keys, form);
    if (key) return key;
  }
  return null;
}

/**
 * A new random key and the API_KEYS entry that admits it. A charge point's is 20 bytes as 40 hex
 * digits: its Basic password is OCPP 1.6's AuthorizationKey, which a charger holds in at most
 * that (the Security Whitepaper's 16-20 bytes); the others are 32 bytes, base64url.
 */
export function generateKey(name: string, scopes: Scope[]): { key: string; entry: string } {
  const key = scopes.includes('charge-point')
    ? randomBytes(20).toString('hex')
    : `eie_${randomBytes(32).toString('base64url')}`;
  return { key, entry: `${name}:${scopes.join('+')}:${hashKey(key).toString('hex')}` };
}
