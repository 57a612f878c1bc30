import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = import.meta.resolve('tsx');

/** Pids of live processes whose working directory is `dir`. */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`) !== dir) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z' && state !== 'X') out.push(Number(name));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

describe('skeleton', () => {
  it('package.json is named colony, with a colony bin, the public API as its export, npm start and npm test', () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as {
      name: string; bin: Record<string, string>; exports: Record<string, string>; scripts: Record<string, string>;
    };
    expect(pkg.name).toBe('colony');
    // The bin is the compiled copy of runtime/cli/colony.mjs (npm run build puts it in dist/).
    expect(pkg.bin.colony).toBe('dist/runtime/cli/colony.mjs');
    expect(existsSync(`${ROOT}/runtime/cli/colony.mjs`)).toBe(true);
    expect(pkg.exports['.']).toBeTruthy();
    expect(pkg.scripts.start).toBeTruthy();
    expect(pkg.scripts.test).toContain('vitest');
    expect(existsSync(`${ROOT}/package-lock.json`)).toBe(true);
    for (const dir of ['actors', 'runtime', 'adapters', 'test', 'deploy', 'bench', 'examples']) expect(statSync(`${ROOT}/${dir}`).isDirectory(), dir).toBe(true);
  });

  it('the README opens with the two commands, and .ci/run calls npm test', () => {
    const readme = readFileSync(`${ROOT}/README.md`, 'utf8');
    const firstBlock = readme.slice(0, readme.indexOf('```', readme.indexOf('```') + 3));
    expect(firstBlock).toContain('npm start');
    expect(firstBlock).toContain('npm test');
    expect(readFileSync(`${ROOT}/.ci/run`, 'utf8')).toMatch(/npm test/);
  });
});

describe('demo', () => {
  it('npm start - runs the manual examples on an embedded NATS with 2 workers, prints the event summary and leaves no process behind', async () => {
    const dir = await tempDir('colony-demo-');
    try {
      // What `npm start` runs (the sources, by the colony-source condition), from a fresh
      // directory so its .colony/ is its own.
      const child = spawn(process.execPath, ['--conditions=colony-source', '--import', TSX, `${ROOT}/examples/demo.ts`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d));
      child.stderr!.on('data', (d: Buffer) => (err += d));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code, `demo failed:\n${err}\n${out}`).toBe(0);
      expect(out).toMatch(/worker\/2\b.*registered/);
      expect(out).toMatch(/worker\/3\b.*registered/);
      expect(out).toMatch(/ref\/\S+/);
      expect(existsSync(`${dir}/.colony`)).toBe(true);
      // The demo's nats-server and workers ran in `dir`; none of them is left.
      expect(processesIn(dir)).toEqual([]);
    } finally {
      for (const p of processesIn(dir)) process.kill(p, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
