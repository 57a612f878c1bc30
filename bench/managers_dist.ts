/**
 * The addprocs scenarios of bench/managers.ts on the compiled package (`addprocs_<manager>_dist`):
 * dist/ (built first when missing) in a process without the colony-source condition, so the
 * driver and every worker it starts, locally, over ssh or in a scheduler job, run plain Node.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

type Emit = (line: Record<string, unknown>) => void;

export async function run(emit: Emit): Promise<void> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  if (!existsSync(join(root, 'dist/runtime/index.js'))) {
    process.stderr.write('bench: managers_dist: building dist/ (npm run build)\n');
    execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  // tsx only for this TypeScript bench file and its task module; 'colony' resolves to dist/.
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./managers.ts', import.meta.url))], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: child.stdout })) if (line.startsWith('{')) emit(JSON.parse(line) as Record<string, unknown>);
  const code = await new Promise<number | null>((r) => child.once('close', r));
  if (code !== 0) throw new Error(`bench/managers.ts on dist/ exited with ${code}`);
}
