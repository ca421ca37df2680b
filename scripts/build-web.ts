/**
 * `npm run build:web`: bundles the dashboard (web/src) with esbuild into dist/web, where the API
 * serves it (src/dashboard/dashboard-router.ts): index.html plus content-hashed assets/. Prints
 * every file's size raw and gzipped, and the gzipped total the page downloads (with `--quiet`, as
 * every script that builds first runs it, only when over budget).
 */
import { build } from 'esbuild';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { GZIP_SUFFIX } from '../src/dashboard/dashboard-router';

/** The folder holding package.json, whether this runs from scripts/ or dist/scripts/. */
function projectRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

export const WEB_SOURCE_DIR = join(projectRoot(), 'web', 'src');
export const WEB_OUT_DIR = join(projectRoot(), 'dist', 'web');
/** The budget for everything the page downloads, gzipped. */
export const ASSET_BUDGET_GZIP_BYTES = 200 * 1024;

export interface AssetSize {
  file: string;
  bytes: number;
  gzipBytes: number;
}

/** uPlot's MIT notice travels with the bundle (its header comment is not a legal comment). */
function licenseBanner(): string {
  const { version } = JSON.parse(
    readFileSync(join(projectRoot(), 'node_modules', 'uplot', 'package.json'), 'utf8'),
  ) as { version: string };
  return `/*! Includes uPlot ${version}, (c) Leon Sorokin, MIT License */`;
}

export async function buildWeb(outDir = WEB_OUT_DIR): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  const result = await build({
    entryPoints: { main: join(WEB_SOURCE_DIR, 'main.ts') },
    outdir: join(outDir, 'assets'),
    entryNames: '[name]-[hash]',
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    tsconfig: join(dirname(WEB_SOURCE_DIR), 'tsconfig.json'),
    banner: { js: licenseBanner() },
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const asset = (ext: string) => {
    const name = outputs.find((o) => o.startsWith('main-') && o.endsWith(ext));
    if (!name) throw new Error(`esbuild produced no main ${ext}`);
    return `/dashboard/assets/${name}`;
  };
  const html = readFileSync(join(WEB_SOURCE_DIR, 'index.html'), 'utf8')
    .replace('/dashboard/assets/main.js', asset('.js'))
    .replace('/dashboard/assets/main.css', asset('.css'));
  writeFileSync(join(outDir, 'index.html'), html);
  // Gzipped once here rather than on every request; the API sends them to whoever takes gzip.
  for (const path of filesUnder(join(outDir, 'assets')))
    writeFileSync(`${path}${GZIP_SUFFIX}`, gzipped(readFileSync(path)));
}

/** As a server or CDN would send it. */
const gzipped = (content: Buffer) => gzipSync(content, { level: 9 });

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Every built file's size, raw and gzipped (the gzipped copies are not counted again). */
export function measureAssets(outDir = WEB_OUT_DIR): {
  files: AssetSize[];
  totalGzipBytes: number;
} {
  const built = filesUnder(outDir).filter((path) => !path.endsWith(GZIP_SUFFIX));
  const files = built.map((path) => {
    const content = readFileSync(path);
    return {
      file: relative(outDir, path),
      bytes: content.length,
      gzipBytes: gzipped(content).length,
    };
  });
  return { files, totalGzipBytes: files.reduce((sum, f) => sum + f.gzipBytes, 0) };
}

export function formatAssetSizes({
  files,
  totalGzipBytes,
}: ReturnType<typeof measureAssets>): string {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  const lines = files.map((f) => `  ${f.file}: ${kb(f.bytes)} (${kb(f.gzipBytes)} gzipped)`);
  const verdict = totalGzipBytes <= ASSET_BUDGET_GZIP_BYTES ? 'within' : 'OVER';
  lines.push(
    `  total: ${kb(totalGzipBytes)} gzipped, ${verdict} the ${kb(ASSET_BUDGET_GZIP_BYTES)} budget`,
  );
  return lines.join('\n');
}

if (require.main === module) {
  buildWeb()
    .then(() => {
      const sizes = measureAssets();
      const over = sizes.totalGzipBytes > ASSET_BUDGET_GZIP_BYTES;
      // `--quiet` (every script that builds first, `npm run key` too): said only when over budget.
      if (over || !process.argv.includes('--quiet')) {
        console.log(`dashboard built in ${relative(process.cwd(), WEB_OUT_DIR)}:`);
        console.log(formatAssetSizes(sizes));
      }
      if (over) process.exit(1);
    })
    .catch((err: unknown) => {
      console.error(`dashboard build failed: ${(err as Error).message}`);
      process.exit(1);
    });
}
