import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ASSET_BUDGET_GZIP_BYTES,
  WEB_OUT_DIR,
  formatAssetSizes,
  measureAssets,
} from '../../scripts/build-web';

describe('dashboard assets (built by the global setup, as npm run build:web does)', () => {
  test('when gzipped, then everything the page downloads fits in 200 KB', () => {
    const sizes = measureAssets();
    process.stdout.write(`\nDashboard assets:\n${formatAssetSizes(sizes)}\n`);
    // In any order: sorting would put the two by their content hashes.
    const files = sizes.files.map((f) => f.file);
    expect(files).toHaveLength(3);
    expect(files).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^assets\/main-\w+\.css$/),
        expect.stringMatching(/^assets\/main-\w+\.js$/),
        'index.html',
      ]),
    );
    expect(sizes.totalGzipBytes).toBeLessThanOrEqual(ASSET_BUDGET_GZIP_BYTES);
  });

  test('when index.html is built, then it loads only hashed assets from the engine itself', () => {
    const html = readFileSync(join(WEB_OUT_DIR, 'index.html'), 'utf8');
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual([
      'data:,',
      expect.stringMatching(/^\/dashboard\/assets\/main-\w+\.css$/),
      expect.stringMatching(/^\/dashboard\/assets\/main-\w+\.js$/),
      '#/fleet',
      '#/devices',
      '#/charge-points',
    ]);
    // No CDN, no other origin anywhere in the bundle.
    const js = readFileSync(join(WEB_OUT_DIR, urls[2].replace('/dashboard/', '')), 'utf8');
    expect(js).not.toMatch(/https?:\/\//);
  });
});
