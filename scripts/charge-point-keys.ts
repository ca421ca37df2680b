/**
 * `--cp-key-file FILE` of the simulator: the key each simulated charge point sends as its Basic
 * auth password when the engine runs with AUTH=on. One `chargePointId key` per line (the key from
 * `npm run key -- --name CP-ID --scopes charge-point`); blank lines and `#` comments are skipped.
 * A charge point without a line connects without a password (enough with AUTH=off).
 */
import { readFileSync } from 'node:fs';
import { UsageError } from './cli';

export function parseChargePointKeys(text: string, source = 'the key file'): Map<string, string> {
  const keys = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const fields = line.split(/\s+/);
    if (fields.length !== 2)
      throw new UsageError(
        `${source}, line ${index + 1}: expected "chargePointId key", got ${fields.length} fields`,
      );
    keys.set(fields[0], fields[1]);
  });
  return keys;
}

export function readChargePointKeys(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--cp-key-file: cannot read ${file}: ${(err as Error).message}`);
  }
  return parseChargePointKeys(text, file);
}
