import express from 'express';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { DASHBOARD_CSP, createDashboardRouter } from '../../src/dashboard/dashboard-router';
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

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dashboard-assets-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(dir, 'assets', 'main-ABC123.js'), 'export {};');
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

  test('when the dashboard was never built, then the page answers 503 saying how to build it', async () => {
    const res = await request(appServing(join(dir, 'nowhere')))
      .get('/dashboard')
      .expect(503);
    expect(res.body).toMatchObject({ error: 'dashboard_not_built' });
    expect(res.body.message).toMatch(/npm run build/);
  });
});
