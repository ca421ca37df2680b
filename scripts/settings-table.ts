/**
 * `npm run docs:settings`: rewrites the README's Configuration table from the settings schema
 * (src/config.ts), so the table and the variables the engine reads cannot drift.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describeSettings } from '../src/config';

const readme = path.join(
  __dirname,
  '..',
  ...(path.extname(__filename) === '.js' ? ['..'] : []),
  'README.md',
);
const lines = readFileSync(readme, 'utf8').split('\n');
const start = lines.findIndex((l) => /^\| variable\s+\| default/.test(l));
if (start < 0) throw new Error('README.md has no Configuration table');
let end = start;
while (end < lines.length && lines[end].startsWith('|')) end += 1;
lines.splice(start, end - start, ...describeSettings());
writeFileSync(readme, lines.join('\n'));
console.log(`README.md: ${describeSettings().length - 2} settings`);
