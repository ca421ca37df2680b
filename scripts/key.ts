/**
 * `npm run key -- --name gateway-1 --scopes ingest[+read+admin]`: prints a new API key (give it to
 * the client, once) and the API_KEYS entry that admits it (only the key's SHA-256 is stored).
 */
import { SCOPES, generateKey, type Scope } from '../src/auth/api-keys';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const name = arg('name');
const scopes = (arg('scopes') ?? '').split('+').filter(Boolean);
if (
  !name ||
  !/^[\w.-]{1,64}$/.test(name) ||
  scopes.length === 0 ||
  scopes.some((s) => !SCOPES.includes(s as Scope))
) {
  console.error(
    `usage: npm run key -- --name NAME --scopes ${SCOPES.join('+')} (one or more, joined with +)`,
  );
  process.exit(2);
}
const { key, entry } = generateKey(name, scopes as Scope[]);
console.log(`key (give it to ${name}; it is not stored anywhere): ${key}`);
console.log(`API_KEYS entry (comma-separate several): ${entry}`);
