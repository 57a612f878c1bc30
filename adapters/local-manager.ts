/**
 * LocalManager: workers as child processes of the driver (`julia -p n`).
 * Their output is shown with a `From worker N:` prefix, as Julia does.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import type { ClusterManager, LaunchParams, ManageOp, WorkerConfig } from './cluster-manager.ts';

export interface LocalManagerOptions {
  /** Extra environment for the workers. */
  env?: Record<string, string>;
  /** Where worker output goes: `inherit` prefixes lines on this process's stdout/stderr. @default 'inherit' */
  output?: 'inherit' | 'ignore';
}

/** Children of every LocalManager in this process: none may outlive it. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export class LocalManager implements ClusterManager {
  readonly name = 'local';
  private readonly pids = new Map<string, number>();

  constructor(private readonly opts: LocalManagerOptions = {}) {}

  /** `'auto'` is one worker per core. */
  static resolveCount(count: number | 'auto'): number {
    return count === 'auto' ? availableParallelism() : count;
  }

  async launch(params: LaunchParams, launched: (c: WorkerConfig) => void, signal: AbortSignal): Promise<void> {
    for (let i = 0; i < params.count && !signal.aborted; i++) {
      const token = params.newToken();
      const argv = params.workerArgv(token);
      const child = spawn(argv[0]!, argv.slice(1), {
        env: { ...process.env, ...this.opts.env, ...params.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group: a Ctrl-C in the driver's terminal is the driver's to handle.
        detached: true,
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      const config: WorkerConfig = { launchToken: token, process: child, ospid: child.pid, host: 'localhost', count: 1, io: child.stdout, exename: params.exename, exeflags: params.exeflags };
      this.forward(config);
      launched(config);
    }
  }

  async manage(pid: number, config: WorkerConfig, op: ManageOp): Promise<void> {
    // The pid stays known until the worker's output has ended (see forward): a worker's last
    // lines (why it exits) often come after it was finalized, and must still say who wrote them.
    // 'interrupt' travels over NATS to the worker; nothing to do here.
    if (op === 'register' || op === 'finalize') this.pids.set(config.launchToken, pid);
  }

  async kill(_pid: number, config: WorkerConfig): Promise<void> {
    const child = config.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await done;
    clearTimeout(t);
  }

  /** The last lines a worker wrote to stderr (for the LaunchError of a worker that died early). */
  stderrOf(config: WorkerConfig): string {
    return (this.tails.get(config.launchToken) ?? []).join('\n');
  }

  private readonly tails = new Map<string, string[]>();

  private forward(config: WorkerConfig): void {
    const child = config.process!;
    const tail: string[] = [];
    this.tails.set(config.launchToken, tail);
    child.once('exit', () => setTimeout(() => this.tails.delete(config.launchToken), 1000).unref());
    // 'close' comes once the child's stdio has ended, after its last line was forwarded.
    child.once('close', () => this.pids.delete(config.launchToken));
    child.stderr?.on('data', (d: Buffer) => {
      tail.push(...d.toString().split('\n').filter(Boolean));
      if (tail.length > 20) tail.splice(0, tail.length - 20);
    });
    const tag = () => `From worker ${this.pids.get(config.launchToken) ?? '?'}:`;
    for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]] as const) {
      if (!stream) continue;
      if (this.opts.output === 'ignore') {
        stream.resume();
        continue;
      }
      createInterface({ input: stream }).on('line', (line) => out.write(`      ${tag()}\t${line}\n`));
    }
  }
}
