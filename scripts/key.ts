/**
 * `npm run key -- --name gateway-1 --scopes ingest[+read+admin]`: prints a new API key (give it to
 * the client, once) and the API_KEYS entry that admits it (only the key's SHA-256 is stored).
 */
import {
  API_KEY_NAME_RULE,
  SCOPES,
  generateKey,
  keyNameProblem,
  parseScopes,
} from '../src/auth/api-keys';
import { exitOnUsageError, parseCommandLine, UsageError } from './cli';

const command = {
  usage: `npm run key -- --name NAME --scopes ${SCOPES.join('+')}`,
  options: {
    name: {
      type: 'string',
      value: 'NAME',
      help: `the client's name: ${API_KEY_NAME_RULE}`,
    },
    scopes: {
      type: 'string',
      value: 'SCOPES',
      help: `what it may do: one or more of ${SCOPES.join(', ')}, joined with + (or commas)`,
    },
  },
} as const;

function main(): void {
  const { values } = parseCommandLine(process.argv.slice(2), command);
  const { name, scopes: scopeText } = values;
  if (!name) throw new UsageError(`--name is required\nusage: ${command.usage}`);
  if (!scopeText) throw new UsageError(`--scopes is required\nusage: ${command.usage}`);
  // API_KEYS joins scopes with + (commas separate its entries); here a comma is unambiguous.
  const { scopes, problem } = parseScopes(
    scopeText
      .split(',')
      .map((s) => s.trim())
      .join('+'),
  );
  if (problem) throw new UsageError(`--scopes: ${problem}`);
  const badName = keyNameProblem(name, scopes);
  if (badName) throw new UsageError(`--name: ${badName}`);
  const { key, entry } = generateKey(name, scopes);
  console.log(`key (give it to ${name}; it is not stored anywhere): ${key}`);
  console.log(`API_KEYS entry (comma-separate several): ${entry}`);
}

try {
  main();
} catch (err) {
  exitOnUsageError(err);
}
