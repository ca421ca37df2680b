import express from 'express';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Registry } from 'prom-client';
import request from 'supertest';
import { DASHBOARD_CSP, createDashboardRouter } from '../../src/dashboard/dashboard-router';
import { createErrorHandler, notFoundHandler, securityHeaders } from '../../src/http/error-handler';
import { createLogger } from '../../src/logger';
import { createHttpMetrics } from '../../src/metrics';

/** The router as app.ts mounts it: after the JSON API's headers, before its 404 and errors. */
function appServing(assetsDir: string, registry = new Registry()) {
  const app = express();
  app.use(createHttpMetrics(registry));
  app.use(securityHeaders);
  app.use(createDashboardRouter({ assetsDir }));
  app.use(notFoundHandler);
  app.use(createErrorHandler(createLogger({ level: 'silent', name: 'test' })));
  return app;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dashboard-assets-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(dir, 'assets', 'main-ABC123.js'), 'export {};');
  writeFileSync(join(dir, 'assets', 'main-ABC123.js.gz'), gzipSync('export {};'));
  writeFileSync(join(dir, 'assets', 'main-NOGZ.css'), 'body{}');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dashboard router', () => {
  test('when the page is asked for, with or without a trailing slash, then it is revalidated each time', async () => {
    for (const path of ['/dashboard', '/dashboard/']) {
      const res = await request(appServing(dir)).get(path).expect(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers['content-security-policy']).toBe(DASHBOARD_CSP);
    }
  });

  test('when a hashed asset is asked for, then it may be cached for good; a missing one is a JSON 404', async () => {
    const app = appServing(dir);
    const asset = await request(app).get('/dashboard/assets/main-ABC123.js').expect(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(asset.headers['content-type']).toMatch(/javascript/);
    const missing = await request(app).get('/dashboard/assets/main-OLD.js').expect(404);
    expect(missing.body.error).toBe('not_found');
    expect(missing.headers['cache-control']).toBe('no-store');
  });

  test('when a client takes gzip, then an asset comes as its gzipped copy, with its own type', async () => {
    const app = appServing(dir);
    const gzipped = await request(app)
      .get('/dashboard/assets/main-ABC123.js')
      .set('Accept-Encoding', 'gzip, deflate, br')
      .expect(200);
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(gzipped.headers['content-type']).toMatch(/javascript/);
    expect(gzipped.headers.vary).toMatch(/Accept-Encoding/);
    expect(gzipped.text).toBe('export {};'); // supertest inflates it
    const plain = await request(app)
      .get('/dashboard/assets/main-ABC123.js')
      .set('Accept-Encoding', 'identity')
      .expect(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.text).toBe('export {};');
    // An asset built without a gzipped copy (an older build) is sent as it is.
    const css = await request(app)
      .get('/dashboard/assets/main-NOGZ.css')
      .set('Accept-Encoding', 'gzip')
      .expect(200);
    expect(css.headers['content-encoding']).toBeUndefined();
    expect(css.headers['content-type']).toMatch(/text\/css/);
    expect(css.text).toBe('body{}');
  });

  test('when a path leaves the assets folder, then it is a JSON 404', async () => {
    const res = await request(appServing(dir)).get('/dashboard/assets/..%2Findex.html').expect(404);
    expect(res.body.error).toBe('not_found');
  });

  test('when assets are served, then the request metrics count them under one route', async () => {
    const registry = new Registry();
    const app = appServing(dir, registry);
    await request(app).get('/dashboard/assets/main-ABC123.js').expect(200);
    await request(app).get('/dashboard/assets/main-NOGZ.css').expect(200);
    const text = await registry.metrics();
    expect(text).toMatch(
      /energy_http_request_duration_seconds_count\{route="\/dashboard\/assets\/:file",method="GET",status_code="200"\} 2/,
    );
    expect(text).not.toContain('route="unmatched"');
  });

  test('when the dashboard was never built, then the page answers 503 saying how to build it', async () => {
    const res = await request(appServing(join(dir, 'nowhere')))
      .get('/dashboard')
      .expect(503);
    expect(res.body).toMatchObject({ error: 'dashboard_not_built' });
    expect(res.body.message).toMatch(/npm run build/);
  });
});
