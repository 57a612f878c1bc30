/**
 * The page's bundle: `page/main.ts` and what it imports (ECharts included) bundled by esbuild
 * into `bundle/app.js` and `bundle/app.css`, a git-ignored folder. `npm run build:dashboard`
 * builds it (pretest and prestart run that); a dashboard that finds it missing or older than its
 * sources builds it itself when esbuild is installed. Nothing is fetched at run time.
 *
 *   node --import tsx runtime/dashboard/page-bundle.ts     builds it
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { ColonyError } from '../transport/errors.ts';

export const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));
export const BUNDLE_DIR = fileURLToPath(new URL('./bundle/', import.meta.url));
const MODEL = fileURLToPath(new URL('./dashboard-model.ts', import.meta.url));

/** The newest modification time of the page's sources. */
function sourcesTime(): number {
  let t = statSync(MODEL).mtimeMs;
  for (const f of readdirSync(PAGE_DIR)) t = Math.max(t, statSync(join(PAGE_DIR, f)).mtimeMs);
  return t;
}

function bundleTime(): number {
  try {
    return Math.min(statSync(join(BUNDLE_DIR, 'app.js')).mtimeMs, statSync(join(BUNDLE_DIR, 'app.css')).mtimeMs);
  } catch {
    return 0;
  }
}

/** Builds the bundle with esbuild. */
export async function buildPage(): Promise<void> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new ColonyError(`the dashboard page is not built (${BUNDLE_DIR} has no app.js) and esbuild is not installed to build it: run npm install, then npm run build:dashboard`, { cause: e });
  }
  await esbuild.build({
    entryPoints: { app: join(PAGE_DIR, 'main.ts') },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    define: { 'process.env.NODE_ENV': '"production"' },
    outdir: BUNDLE_DIR,
    logLevel: 'warning',
  });
}

/** Makes sure a current bundle is there: builds it when missing, or stale and esbuild is at hand. */
export async function ensurePage(): Promise<void> {
  const built = bundleTime();
  // The compiled package (dist/) ships the bundle without the page's sources.
  if (built && (!existsSync(PAGE_DIR) || !existsSync(MODEL) || built >= sourcesTime())) return;
  try {
    await buildPage();
  } catch (e) {
    if (!built) throw e;
    // A stale bundle without esbuild (an installed package) still serves.
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t0 = performance.now();
  await buildPage();
  process.stderr.write(`dashboard page built into ${BUNDLE_DIR} in ${Math.round(performance.now() - t0)} ms\n`);
}
