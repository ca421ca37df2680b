import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { version as packageVersion } from '../package.json';

/** The code a fingerprint covers: the engine's own (src/) and its schema's (db/). */
const CODE_DIRECTORIES = ['src', 'db'];

/**
 * A short hash of the code under `root`'s CODE_DIRECTORIES: every `.js` and `.ts` file's path and
 * contents (not source maps). Two builds of the same source share it; any change to a file makes
 * another.
 */
export function fingerprintOf(root: string): string {
  const hash = createHash('sha256');
  for (const directory of CODE_DIRECTORIES) {
    for (const file of codeFiles(path.join(root, directory))) {
      hash.update(path.relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
    }
  }
  return hash.digest('hex').slice(0, 12);
}

/** The code files under `directory`, in a fixed order; none when it does not exist. */
function codeFiles(directory: string): string[] {
  let entries;
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => {
      const file = path.join(directory, e.name);
      if (e.isDirectory()) return codeFiles(file);
      return e.isFile() && /\.(js|ts)$/.test(e.name) ? [file] : [];
    });
}

let ownFingerprint: string | undefined;

/**
 * The fingerprint of the code this process runs (computed once): results it stores for others to
 * serve, as the report caches, are kept apart under it, so that replicas of two releases sharing a
 * Redis during a rolling upgrade never serve each other's reports.
 */
export function codeFingerprint(): string {
  ownFingerprint ??= fingerprintOf(path.join(__dirname, '..'));
  return ownFingerprint;
}

/**
 * The release this process runs, as a version with build metadata: the package's version and its
 * code's fingerprint (`0.2.0+1a2b3c4d5e6f`). The version alone told nothing apart during a rolling
 * upgrade, where replicas of two releases of one version answer side by side.
 */
export function releaseName(): string {
  return `${packageVersion}+${codeFingerprint()}`;
}
