import { Router, type Response } from 'express';
import { extname, join, resolve } from 'node:path';
import { AppError } from '../errors';
import { isNotServed } from '../http/file-sends';
import { methodNotAllowed } from '../http/mount-routes';

/**
 * The page's own policy, replacing the JSON API's `default-src 'none'`: scripts, styles and data
 * from this origin only, nothing inline and no eval. uPlot styles elements through the CSSOM,
 * which `style-src 'self'` allows. `img-src data:` is for the empty favicon only.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Asset names carry their content hash, so a browser may keep them for good. */
const HASHED_ASSET_CACHE = 'public, max-age=31536000, immutable';

/** `npm run build:web` writes a gzipped copy beside each asset: `main-X.js` and `main-X.js.gz`. */
export const GZIP_SUFFIX = '.gz';

/**
 * Where `npm run build:web` writes the dashboard: dist/web. Compiled, this file is
 * dist/src/dashboard/*.js (so ../../web); from sources (tsx, jest) it is src/dashboard/*.ts.
 */
export function dashboardAssetsDir(): string {
  return extname(__filename) === '.js'
    ? resolve(__dirname, '..', '..', 'web')
    : resolve(__dirname, '..', '..', 'dist', 'web');
}

const notBuilt = () =>
  new AppError(
    503,
    'dashboard_not_built',
    'The dashboard has not been built on this server; run npm run build',
  );

const useDashboardPolicy = (res: Response) => res.set('Content-Security-Policy', DASHBOARD_CSP);

/**
 * `GET /dashboard`: the page (index.html, revalidated on every load so a new build is picked up)
 * and `/dashboard/assets/*` (hashed, cached for a year). Neither needs an API key: the page asks
 * for one and sends it with its API requests.
 */
export function createDashboardRouter({ assetsDir }: { assetsDir: string }): Router {
  const root = resolve(assetsDir);
  const router = Router();

  router.use('/dashboard', (_req, res, next) => {
    useDashboardPolicy(res);
    next();
  });

  router.get('/dashboard', (_req, res, next) => {
    res.set('Cache-Control', 'no-cache');
    res.sendFile(join(root, 'index.html'), { cacheControl: false }, (err?: Error) => {
      if (!err || res.headersSent) return;
      next((err as NodeJS.ErrnoException).code === 'ENOENT' ? notBuilt() : err);
    });
  });
  router.all('/dashboard', methodNotAllowed(['GET', 'HEAD']));

  // One route (and one metrics label) for every asset; its gzipped copy to those that take it.
  const sendOptions = {
    root: join(root, 'assets'),
    cacheControl: false,
    headers: { 'Cache-Control': HASHED_ASSET_CACHE },
  };
  router.get('/dashboard/assets/:file', (req, res, next) => {
    const { file } = req.params;
    res.vary('Accept-Encoding');
    // Not there, or not a file of the folder (send refuses `..`): on to the JSON 404. Cached for
    // good only once found: a 404 now may be the asset of a build deployed later. Refused
    // otherwise (a Range outside the file): said in JSON.
    const send = (name: string, orElse: () => void) =>
      res.sendFile(name, sendOptions, (err?: Error) => {
        if (!err || res.headersSent) return;
        if (isNotServed(err)) orElse();
        else next(err);
      });
    const plain = () => {
      res.removeHeader('Content-Encoding');
      res.removeHeader('Content-Type');
      send(file, () => next('router'));
    };
    if (req.acceptsEncodings('gzip', 'identity') !== 'gzip') return plain();
    res.type(extname(file)).set('Content-Encoding', 'gzip');
    send(`${file}${GZIP_SUFFIX}`, plain);
  });
  router.all('/dashboard/assets/:file', methodNotAllowed(['GET', 'HEAD']));

  return router;
}
