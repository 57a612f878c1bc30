#!/usr/bin/env node
// `npm run build` (and `prepare`): compiles actors/, adapters/ and runtime/ to dist/ with type
// declarations (tsconfig.build.json), and copies beside them the files that are not TypeScript
// but run (the bin, the heartbeat thread, the job entry, setup.sh, the dashboard's page and its
// bundle, built first with runtime/dashboard/page-bundle.ts). The output goes to a fresh
// folder first and replaces dist/ at the end, so no stale file of a removed source survives.
//
// The NATS client is about 70 CommonJS files; a worker loads them in half the time as one ES
// module bundle (dist/vendor/, made with esbuild, a devDependency). The compiled runtime imports
// the bundle instead of @nats-io/*; the declarations keep naming @nats-io/*, still dependencies.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCES = ['actors', 'adapters', 'runtime'];
const DIST = join(ROOT, 'dist');
const OUT = join(ROOT, `.dist-build-${process.pid}`);

/** The packages bundled into dist/vendor/<name>.mjs, one entry each, sharing their chunks. */
const VENDOR = { '@nats-io/transport-node': 'nats-transport-node', '@nats-io/jetstream': 'nats-jetstream', '@nats-io/kv': 'nats-kv' };
const require = createRequire(import.meta.url);

/** Bundles VENDOR into `out/vendor/`; false (and the runtime imports the packages) without esbuild. */
async function bundleVendor(out) {
  let esbuild;
  try {
    esbuild = require('esbuild');
  } catch {
    console.error('colony build: esbuild not found; dist/ imports @nats-io/* directly');
    return false;
  }
  const src = join(out, '.vendor-src');
  mkdirSync(src, { recursive: true });
  const entryPoints = Object.entries(VENDOR).map(([pkg, name]) => {
    // Named exports spelled out: esbuild cannot re-export a CommonJS module's names with `export *`.
    const names = Object.keys(require(pkg)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default');
    const file = join(src, `${name}.mjs`);
    writeFileSync(file, `import * as m from '${pkg}';\nexport const { ${names.join(', ')} } = m;\n`);
    return { in: file, out: name };
  });
  await esbuild.build({
    entryPoints, bundle: true, splitting: true, format: 'esm', platform: 'node', target: 'node20', outdir: join(out, 'vendor'),
    chunkNames: 'chunk-[hash]', outExtension: { '.js': '.mjs' }, absWorkingDir: ROOT, nodePaths: [join(ROOT, 'node_modules')], logLevel: 'warning', legalComments: 'none',
    // The CommonJS inside asks for Node's builtins with require().
    banner: { js: "import { createRequire as __colonyRequire } from 'node:module'; const require = __colonyRequire(import.meta.url);" },
  });
  rmSync(src, { recursive: true, force: true });
  return true;
}

/** `from '@nats-io/x'` -> `from '<relative>/vendor/<name>.mjs'` in one compiled file. */
function useVendor(file, out) {
  const text = readFileSync(file, 'utf8');
  const fixed = text.replace(/(from\s*|import\(\s*)(['"])(@nats-io\/[a-z-]+)\2/g, (m, pre, q, pkg) => {
    if (!VENDOR[pkg]) return m;
    let rel = relative(dirname(file), join(out, 'vendor', `${VENDOR[pkg]}.mjs`));
    if (!rel.startsWith('.')) rel = `./${rel}`;
    return `${pre}${q}${rel}${q}`;
  });
  if (fixed !== text) writeFileSync(file, fixed);
}

const walk = (dir) => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? walk(p) : [p];
});

rmSync(OUT, { recursive: true, force: true });
try {
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', OUT], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status ?? r.signal})`);
  // The dashboard page runs in a browser: the package ships its bundle (and index.html), not its sources.
  const page = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    "await (await import('./runtime/dashboard/page-bundle.ts')).ensurePage()"], { cwd: ROOT, stdio: 'inherit' });
  if (page.status !== 0) throw new Error(`the dashboard page bundle failed (exit ${page.status ?? page.signal})`);
  for (const file of SOURCES.flatMap((d) => walk(join(ROOT, d)))) {
    const to = join(OUT, relative(ROOT, file));
    if ((file.endsWith('.d.ts') || !file.endsWith('.ts')) && !file.endsWith('tsconfig.json')) {
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(file, to);
    }
  }
  // tsc rewrites `./x.ts` to `./x.js` in the JavaScript only; the declarations get the same, so
  // that any TypeScript consumer (older ones refuse `.ts` specifiers) resolves them.
  for (const file of walk(OUT).filter((f) => f.endsWith('.d.ts'))) {
    const text = readFileSync(file, 'utf8');
    const fixed = text.replace(/((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\.([mc]?)ts\2/g, (_m, pre, q, path, x) => `${pre}${q}${path}.${x}js${q}`);
    if (fixed !== text) writeFileSync(file, fixed);
  }
  if (await bundleVendor(OUT)) {
    for (const file of walk(OUT).filter((f) => /\.m?js$/.test(f) && !f.includes('/vendor/'))) useVendor(file, OUT);
  }
  rmSync(DIST, { recursive: true, force: true });
  renameSync(OUT, DIST);
} catch (e) {
  rmSync(OUT, { recursive: true, force: true });
  console.error(`colony build: ${e.message}`);
  process.exit(1);
}
