/**
 * The package as users install it: `npm pack` (which builds dist/ through `prepare`), the tarball
 * installed into an empty project with `npm install`, and that project run with plain Node, with
 * `npx colony run` for TypeScript, and type-checked against the shipped declarations.
 *
 * One pack and one install, shared by the cases (the slow part: a build and an install from the
 * npm cache).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { externalNats, tempDir } from './helpers/cluster.ts';
import { uniqueName } from './helpers/nats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const SLOW_MS = 240_000;

/** The environment of the project's processes: no loader or condition inherited from the test runner. */
function projectEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('VITEST') || k === 'TSX_TSCONFIG_PATH') delete env[k];
  // Against an external server (COLONY_TEST_NATS_URL) the programs join it under a fresh name.
  if (externalNats) Object.assign(env, { CONSUMER_NATS_URL: process.env.COLONY_TEST_NATS_URL, CONSUMER_CLUSTER: uniqueName('pkg') });
  return env;
}

/** Runs a command to its end; resolves with its exit code and output (never rejects on a non-zero exit). */
function run(cmd: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: projectEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What every program of the project prints: pmap results and what each worker saw. */
interface Report {
  results: { x: number; y: number; on: number }[];
  workers: { pid: number; myid: number; colony: string; tsLoader: boolean }[];
}

function lastJsonLine(stdout: string): Report {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (!line) throw new Error(`no JSON line in the program's output:\n${stdout}`);
  return JSON.parse(line) as Report;
}

const START = `const nats = process.env.CONSUMER_NATS_URL;
const cluster = await Cluster.start({ workers: 2, workerOutput: 'ignore', ...(nats ? { nats, name: process.env.CONSUMER_CLUSTER } : {}) });`;

const FILES: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'colony-consumer', private: true, type: 'module' }, null, 2),
  // A plain JavaScript task module: what a worker sees of itself.
  'tasks.mjs': `import { myid, task } from 'colony';
export const square = task(import.meta.url, function square(x) { return { x, y: x * x, on: myid() }; });
export const whoami = task(import.meta.url, function whoami() {
  return { pid: process.pid, myid: myid(), colony: import.meta.resolve('colony'), tsLoader: Boolean(globalThis[Symbol.for('colony.typescriptLoader')]) };
});
`,
  'main.mjs': `import { Cluster } from 'colony';
import { square, whoami } from './tasks.mjs';
${START}
try {
  await cluster.everywhere(new URL('./tasks.mjs', import.meta.url));
  const results = await cluster.pmap(square, [1, 2, 3, 4, 5, 6, 7, 8]);
  const workers = await Promise.all(cluster.workers().map((p) => cluster.remotecallFetch(whoami, p)));
  console.log(JSON.stringify({ results, workers }));
} finally {
  await cluster.close();
}
`,
  // The same with TypeScript, for npx colony run.
  'tasks.ts': `import { myid, task } from 'colony';
export interface Squared { x: number; y: number; on: number }
export const cube = task(import.meta.url, function cube(x: number): Squared { return { x, y: x ** 3, on: myid() }; });
export const whoami = task(import.meta.url, function whoami() {
  const g = globalThis as { [k: symbol]: unknown };
  return { pid: process.pid, myid: myid(), colony: import.meta.resolve('colony'), tsLoader: Boolean(g[Symbol.for('colony.typescriptLoader')]) };
});
`,
  'main.ts': `import { Cluster } from 'colony';
import { cube, whoami } from './tasks.ts';
import type { Squared } from './tasks.ts';
${START}
try {
  await cluster.everywhere(new URL('./tasks.ts', import.meta.url));
  const results: Squared[] = await cluster.pmap(cube, [1, 2, 3, 4, 5, 6]);
  const workers = await Promise.all(cluster.workers().map((p) => cluster.remotecallFetch(whoami, p)));
  console.log(JSON.stringify({ results, workers }));
} finally {
  await cluster.close();
}
`,
  // The dashboard serves its page and bundle from the installed package.
  'dashboard.mjs': `import { Cluster } from 'colony';
const nats = process.env.CONSUMER_NATS_URL;
const cluster = await Cluster.start({ workers: 0, dashboard: { port: 0 }, ...(nats ? { nats, name: process.env.CONSUMER_CLUSTER } : {}) });
try {
  const at = new URL(cluster.dashboardUrl);
  const get = async (path) => { const u = new URL(path, at); u.search = at.search; const r = await fetch(u); return { status: r.status, bytes: (await r.text()).length }; };
  console.log(JSON.stringify({ page: await get('/'), app: await get('/app.js'), css: await get('/app.css') }));
} finally {
  await cluster.close();
}
`,
  // A wrong argument type to remotecall: line 5, the 'two' argument.
  'wrong.ts': `import { Cluster, task } from 'colony';
export const add = task(import.meta.url, function add(a: number, b: number) { return a + b; });
const cluster = await Cluster.start({ workers: 1 });
const ok: number = await cluster.remotecallFetch(add, 2, 1, 2);
const r = cluster.remotecall(add, 2, 1, 'two');
console.log(ok, r.where);
`,
};

/** A consumer's tsconfig: main.ts (which must check) and wrong.ts (one error), in one program. */
function tsconfig(): string {
  return JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2023', 'ESNext.Disposable'], strict: true, noEmit: true,
      allowImportingTsExtensions: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')],
      // As most projects do: checking every .d.ts (the AWS SDK's among them) takes long here.
      skipLibCheck: true,
    },
    files: ['main.ts', 'wrong.ts'],
  });
}

describe('the installed package', () => {
  let dir = '';
  let project = '';
  let tarball = '';

  beforeAll(async () => {
    dir = await tempDir('colony-package-');
    project = join(dir, 'project');
    const packed = await run('npm', ['pack', '--pack-destination', dir], ROOT, SLOW_MS);
    expect(packed.code, `npm pack failed:\n${packed.stderr}`).toBe(0);
    tarball = join(dir, (await readdir(dir)).find((f) => f.endsWith('.tgz'))!);
    await mkdir(project);
    for (const [name, text] of Object.entries(FILES)) await writeFile(join(project, name), text);
    await writeFile(join(project, 'tsconfig.json'), tsconfig());
    const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], project, SLOW_MS);
    expect(installed.code, `npm install failed:\n${installed.stderr}`).toBe(0);
  }, SLOW_MS);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('npm pack holds dist/ with its declarations, the bin, the README and docs/, and no tests or sources', async () => {
    const { stdout } = await promisify(execFile)('tar', ['tzf', tarball]);
    const files = stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const f of ['package.json', 'README.md', 'docs/package.md', 'dist/runtime/index.js', 'dist/runtime/index.d.ts', 'dist/adapters/index.d.ts',
      'dist/actors/index.d.ts', 'dist/runtime/cli/colony.mjs', 'dist/runtime/dashboard/page/index.html', 'dist/runtime/dashboard/bundle/app.js', 'dist/runtime/process/heartbeat-thread.mjs', 'dist/adapters/job-worker.mjs']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /^test\/|\.test\.|^bench\/|^examples\//.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('node main.mjs, with no loader: 2 workers load a .mjs task module and run a pmap, on one copy of the runtime', async () => {
    const r = await run(process.execPath, ['main.mjs'], project);
    expect(r.code, r.stderr).toBe(0);
    const report = lastJsonLine(r.stdout);
    expect(report.results.map((o) => o.y)).toEqual([1, 4, 9, 16, 25, 36, 49, 64]);
    for (const o of report.results) expect([2, 3]).toContain(o.on);
    // Each worker's myid() is the pid the driver gave it: the task module and the worker share
    // the runtime. Both run the compiled copy, and neither registered the TypeScript loader.
    expect(report.workers.map((w) => w.myid)).toEqual([2, 3]);
    for (const w of report.workers) {
      expect(w.colony).toBe(`file://${project}/node_modules/colony/dist/runtime/index.js`);
      expect(w.tsLoader).toBe(false);
    }
  }, 120_000);

  it('npx colony run main.ts: a TypeScript driver and task module, the loader registered on first use', async () => {
    const r = await run('npx', ['--no', 'colony', 'run', 'main.ts'], project);
    expect(r.code, r.stderr).toBe(0);
    const report = lastJsonLine(r.stdout);
    expect(report.results.map((o) => o.y)).toEqual([1, 8, 27, 64, 125, 216]);
    expect(report.workers.map((w) => w.myid)).toEqual([2, 3]);
    for (const w of report.workers) {
      expect(w.colony).toBe(`file://${project}/node_modules/colony/dist/runtime/index.js`);
      expect(w.tsLoader).toBe(true);
    }
  }, 120_000);

  it('the dashboard serves its page and its bundle from the installed package', async () => {
    const r = await run(process.execPath, ['dashboard.mjs'], project);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, { status: number; bytes: number }>;
    for (const k of ['page', 'app', 'css']) {
      expect(got[k]!.status, k).toBe(200);
      expect(got[k]!.bytes, k).toBeGreaterThan(100);
    }
  }, 60_000);

  it('inside the repository, with dist/ built (by the pack above), colony from the sources still resolves "colony" to the sources', async () => {
    const script = join(ROOT, 'test/fixtures/which-colony.mjs');
    const sources = await run(process.execPath, [join(ROOT, 'runtime/cli/colony.mjs'), 'run', script], ROOT);
    expect(sources.code, sources.stderr).toBe(0);
    expect(JSON.parse(sources.stdout).colony).toBe(`file://${ROOT}runtime/index.ts`);
    // Without the condition the same import is the compiled copy.
    const plain = await run(process.execPath, [script], ROOT);
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout).colony).toBe(`file://${ROOT}dist/runtime/index.js`);
  }, 60_000);

  it('a TypeScript consumer type-checks against the shipped declarations; a wrong argument to remotecall does not', async () => {
    const r = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], project);
    expect(r.code).not.toBe(0);
    const errors = r.stdout.trim().split('\n').filter((l) => /error TS/.test(l));
    // main.ts checks; wrong.ts has one error, at the 'two' argument (line 5, column 41), naming
    // its type and the parameter's. Had the declarations not resolved, `remotecall` would take anything.
    expect(errors, r.stdout).toEqual([
      "wrong.ts(5,41): error TS2345: Argument of type 'string' is not assignable to parameter of type 'number'.",
    ]);
  }, 120_000);
});
