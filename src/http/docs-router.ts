/**
 * `/openapi.json` and the interactive docs at `/docs`: Swagger UI, served from this process out of
 * the swagger-ui-dist package.
 */
import { Router, type RequestHandler } from 'express';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { isNotServed } from './file-sends';
import { methodNotAllowed } from './mount-routes';

const DOCS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Energy Ingestion Engine API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" sizes="32x32" href="/docs/assets/favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="/docs/assets/favicon-16x16.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>`;

const DOCS_INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui' });`;

/**
 * The package's files the docs page uses (and the browser's source maps of them): not the rest,
 * such as its stock page and initializer, which point at Swagger's petstore example.
 */
const ASSETS = new Set([
  'swagger-ui-bundle.js',
  'swagger-ui-bundle.js.map',
  'swagger-ui.css',
  'swagger-ui.css.map',
  'favicon-16x16.png',
  'favicon-32x32.png',
]);

/** Text files of the package, sent gzipped to those that take it (the bundle: 1.7 MB -> 0.46 MB). */
const COMPRESSIBLE = new Set(['.js', '.css', '.map']);

/** Not hashed names: a browser asks again (ETag) whether an upgrade changed them. */
const REVALIDATE = 'no-cache';

/** A file's gzipped copy and its ETag (the engine's Express makes none: its answers are not cached). */
interface GzippedFile {
  content: Buffer;
  etag: string;
}

/** The JSON API forbids everything; the docs page needs its own scripts and styles. */
const docsHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'Content-Security-Policy':
      "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
  });
  next();
};

/**
 * `/docs/assets/:file`: one route (one metrics label) for Swagger UI's files. Each compressible
 * file is gzipped on its first request and kept: the package's files are few and fixed, and only
 * an API whose docs are opened pays for them.
 */
function docsAssets(dir: string): RequestHandler {
  const gzipped = new Map<string, Promise<GzippedFile>>();
  const gzipOnce = (file: string) => {
    let copy = gzipped.get(file);
    if (!copy) {
      copy = readFile(path.join(dir, file))
        .then((content) => promisify(gzip)(content))
        .then((content) => ({
          content,
          etag: `"${createHash('sha1').update(content).digest('base64url')}"`,
        }));
      // A file that is not there (or a folder) is not kept: the plain send answers its 404.
      copy.catch(() => gzipped.delete(file));
      gzipped.set(file, copy);
    }
    return copy;
  };
  return (req, res, next) => {
    const file = String(req.params.file);
    // Out of this router: not to the 405 of other methods, but to the JSON 404.
    if (!ASSETS.has(file)) return next('router');
    res.vary('Accept-Encoding');
    const plain = () =>
      res.sendFile(file, { root: dir, headers: { 'Cache-Control': REVALIDATE } }, (err?: Error) => {
        if (!err || res.headersSent) return;
        next(isNotServed(err) ? 'router' : err);
      });
    const ext = path.extname(file);
    if (!COMPRESSIBLE.has(ext) || req.acceptsEncodings('gzip', 'identity') !== 'gzip') {
      return plain();
    }
    gzipOnce(file).then(({ content, etag }) => {
      res.type(ext).set({ 'Content-Encoding': 'gzip', 'Cache-Control': REVALIDATE, ETag: etag });
      if (req.fresh) res.status(304).end();
      else res.send(content);
    }, plain);
  };
}

/** `/openapi.json` (the given document) and `/docs` with its assets. */
export function createDocsRouter(document: Record<string, unknown>): Router {
  const router = Router();
  const assets = path.dirname(require.resolve('swagger-ui-dist/package.json'));
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  router.get('/docs', docsHeaders, (_req, res) => {
    res.type('html').send(DOCS_PAGE);
  });
  router.get('/docs/init.js', docsHeaders, (_req, res) => {
    res.type('application/javascript').send(DOCS_INIT);
  });
  router.get('/docs/assets/:file', docsHeaders, docsAssets(assets));
  router.all(
    ['/openapi.json', '/docs', '/docs/init.js', '/docs/assets/:file'],
    methodNotAllowed(['GET', 'HEAD']),
  );
  return router;
}
