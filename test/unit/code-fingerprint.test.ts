import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { codeFingerprint, fingerprintOf } from '../../src/code-fingerprint';
import { createRedisKeys } from '../../src/redis-keys';

describe('the code fingerprint', () => {
  let roots: string[] = [];
  afterEach(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
    roots = [];
  });

  /** A release's code: its files by path under the root. */
  const release = (files: Record<string, string>) => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'fingerprint-'));
    roots.push(root);
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    return root;
  };
  const code = {
    'src/analytics/report.js': 'exports.rule = 1;',
    'src/app.js': 'require("./analytics/report");',
    'db/migrations/20261207_a.js': 'exports.up = () => {};',
  };

  test('when two builds hold the same code, then they share a fingerprint, whatever else they hold', () => {
    const other = release({ ...code, 'src/app.js.map': '{}', 'README.md': 'other words' });
    expect(fingerprintOf(release(code))).toBe(fingerprintOf(other));
  });

  test('when a report rule, a migration or a file name changes, then the fingerprint does', () => {
    const before = fingerprintOf(release(code));
    for (const changed of <Record<string, string>[]>[
      { ...code, 'src/analytics/report.js': 'exports.rule = 2;' },
      { ...code, 'db/migrations/20261207_b.js': 'exports.up = () => {};' },
      {
        'src/analytics/rules.js': code['src/analytics/report.js'],
        'src/app.js': code['src/app.js'],
        'db/migrations/20261207_a.js': code['db/migrations/20261207_a.js'],
      },
    ]) {
      expect(fingerprintOf(release(changed))).not.toBe(before);
    }
  });

  test('when reports are cached, then their keys hold the running code fingerprint: a release never serves another release’s reports', () => {
    expect(codeFingerprint()).toMatch(/^[0-9a-f]{12}$/);
    const keys = createRedisKeys('energy');
    expect(keys.analyticsCache({ vehicleId: 'V-1' }, 0, 1, 'perf')).toBe(
      `energy:analytics:${codeFingerprint()}:perf:vehicle:V-1:0:1`,
    );
    expect(keys.analyticsCache('fleet', 0, 1, 'fleet')).toBe(
      `energy:analytics:${codeFingerprint()}:fleet:fleet:0:1`,
    );
  });
});
