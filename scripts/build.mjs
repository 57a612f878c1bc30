#!/usr/bin/env node
// `npm run build` (and `prepare`): compiles actors/, adapters/ and runtime/ to dist/ with type
// declarations (tsconfig.build.json), and copies beside them the files that are not TypeScript
// but run (the bin, the heartbeat thread, the job entry, setup.sh). The output goes to a fresh
// folder first and replaces dist/ at the end, so no stale file of a removed source survives.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCES = ['actors', 'adapters', 'runtime'];
const DIST = join(ROOT, 'dist');
const OUT = join(ROOT, `.dist-build-${process.pid}`);

const walk = (dir) => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? walk(p) : [p];
});

rmSync(OUT, { recursive: true, force: true });
try {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', OUT], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status ?? r.signal})`);
  for (const file of SOURCES.flatMap((d) => walk(join(ROOT, d)))) {
    const to = join(OUT, relative(ROOT, file));
    if (file.endsWith('.d.ts') || !file.endsWith('.ts')) {
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
  rmSync(DIST, { recursive: true, force: true });
  renameSync(OUT, DIST);
} catch (e) {
  rmSync(OUT, { recursive: true, force: true });
  console.error(`colony build: ${e.message}`);
  process.exit(1);
}
