import express from 'express';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { createDashboardRouter } from '../../src/dashboard/dashboard-router';
import { createErrorHandler, notFoundHandler, securityHeaders } from '../../src/http/error-handler';
import { createLogger } from '../../src/logger';

/** The router as app.ts mounts it: after the JSON API's headers, before its 404 and errors. */
function appServing(assetsDir: string) {
  const app = express();
  app.use(securityHeaders);
  app.use(createDashboardRouter({ assetsDir }));
  app.use(notFoundHandler);
  app.use(createErrorHandler(createLogger({ level: 'silent', name: 'test' })));
  return app;
}

const SCRIPT = 'export const answer = 42;';
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dashboard-refusals-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(dir, 'assets', 'main-ABC123.js'), SCRIPT);
  writeFileSync(join(dir, 'assets', 'main-ABC123.js.gz'), gzipSync(SCRIPT));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('what the dashboard router refuses', () => {
  test.each(['gzip', 'identity'])(
    'when an asset is asked for a Range outside it (Accept-Encoding %s), then 416 in JSON with its size, cached by nobody; not a 404 kept for a year',
    async (encoding) => {
      for (const range of ['bytes=99999999-', 'bytes=5-2']) {
        const res = await request(appServing(dir))
          .get('/dashboard/assets/main-ABC123.js')
          .set('Accept-Encoding', encoding)
          .set('Range', range);
        expect(res.status).toBe(416);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        expect(res.headers['content-encoding']).toBeUndefined();
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.body.error).toBe('range_not_satisfiable');
      }
    },
  );

  test('when the page is asked for a Range outside it, then its 416 is JSON too, not HTML', async () => {
    const res = await request(appServing(dir)).get('/dashboard').set('Range', 'bytes=99999-');
    expect(res.status).toBe(416);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body.error).toBe('range_not_satisfiable');
  });

  test('when an asset path names the assets folder itself, then it is a JSON 404, not a 500', async () => {
    for (const file of ['.', '%2E']) {
      const res = await request(appServing(dir)).get(`/dashboard/assets/${file}`).expect(404);
      expect(res.body.error).toBe('not_found');
      expect(res.headers['cache-control']).toBe('no-store');
    }
  });

  test('when an asset path is asked with another method, then 405 with Allow; OPTIONS answers 204 with it', async () => {
    for (const file of ['main-ABC123.js', 'nope.js']) {
      const path = `/dashboard/assets/${file}`;
      for (const method of ['post', 'delete', 'put'] as const) {
        const res = await request(appServing(dir))[method](path).expect(405);
        expect(res.headers.allow).toBe('GET, HEAD, OPTIONS');
        expect(res.body.error).toBe('method_not_allowed');
      }
      const options = await request(appServing(dir)).options(path).expect(204);
      expect(options.headers.allow).toBe('GET, HEAD, OPTIONS');
    }
  });
});
