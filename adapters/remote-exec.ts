/**
 * The base of managers that start each worker with a remote-execution command that stays
 * attached for the worker's life: `ssh host cmd` (SSHManager) and `bpsh node cmd` (ScyldManager).
 *
 * The remote side runs one POSIX `sh -c` script: it reads the credentials from stdin (so they
 * appear in no argv, local or remote), prints `colony-ospid:<pid>`, and execs the worker. The
 * ospid line says the remote side runs: only then is the worker handed to the driver, and a
 * command that fails before it (a refused connection, a down node) fails the launch with its
 * stderr. The local command's process is the worker's process for the driver, so its exit is the
 * worker's exit; `kill` signals the remote pid through the same command.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ColonyError, LaunchError } from '../runtime/transport/errors.ts';
import { AdapterManager } from './adapter-manager.ts';
import type { AdapterManagerOptions, Launch, Unit } from './adapter-manager.ts';
import type { WorkerConfig } from './cluster-manager.ts';
import { run, shellQuote } from './shell-scheduler.ts';

export interface RemoteExecOptions extends AdapterManagerOptions {
  /** Node on the remote side. @default the driver's node (process.execPath) */
  exename?: string;
  /** Flags for the remote node, before the script. */
  exeflags?: string[];
  /** Remote working directory. @default the driver's working directory */
  dir?: string;
  /** Connections being set up at once (Julia's `max_parallel`). @default 10 */
  maxParallel?: number;
  /** Extra (non-secret) environment for the workers; it travels on the command line. */
  env?: Record<string, string>;
  /** Where worker output goes: `inherit` prefixes it with `From worker N:`. @default 'inherit' */
  output?: 'inherit' | 'ignore';
}

/** @default for {@link RemoteExecOptions.maxParallel} (Julia's). */
export const DEFAULT_MAX_PARALLEL = 10;

/** Where one worker goes. */
export interface Placement {
  /** What the command addresses: `user@host` (with its port in `args`), a node number. */
  target: string;
  /** The host as the worker config reports it. */
  host: string;
}

const OSPID_LINE = /^colony-ospid:(\d+)$/;

interface RemoteProc {
  child: ChildProcess;
  place: Placement;
  ospid: number | null;
  stderr: string[];
}

export abstract class RemoteExecManager extends AdapterManager {
  protected readonly ropts: RemoteExecOptions;
  private running = 0;
  private readonly slots: (() => void)[] = [];
  private seq = 0;

  constructor(name: string, opts: RemoteExecOptions = {}) {
    super(name, opts);
    this.ropts = opts;
  }

  /** Where each of `count` workers goes. */
  protected abstract placements(count: number): Promise<Placement[]>;
  /** The local argv that runs `script` (a POSIX sh script) at `p`. */
  protected abstract commandFor(p: Placement, script: string): string[];

  /** The local argv that sends `signal` to process `ospid` at `p`. */
  protected killCommand(p: Placement, ospid: number, signal: 'TERM' | 'KILL'): string[] {
    return this.commandFor(p, `kill -${signal} ${ospid}`);
  }

  /** The remote script: read the credentials from stdin, report the pid, exec the worker. */
  remoteScript(workerArgv: string[]): string {
    const exe = this.ropts.exename ?? workerArgv[0]!;
    const argv = [exe, ...(this.ropts.exeflags ?? []), ...workerArgv.slice(1)];
    const env = Object.entries(this.ropts.env ?? {}).map(([k, v]) => `export ${k}=${shellQuote(v)}; `).join('');
    return [
      `cd ${shellQuote(this.ropts.dir ?? process.cwd())} || exit 78`,
      'while IFS= read -r colony_l && [ -n "$colony_l" ]; do export "$colony_l"; done',
      `${env}echo "colony-ospid:$$"`,
      `exec ${argv.map(shellQuote).join(' ')}`,
    ].join('\n');
  }

  /** The stdin of the remote command: `KEY=value` lines, then an empty line. */
  static credentialInput(env: Record<string, string>): string {
    return Object.entries(env).map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || /[\r\n]/.test(v)) throw new ColonyError(`environment entry '${k}' cannot travel on a line`);
      return `${k}=${v}\n`;
    }).join('') + '\n';
  }

  protected describe(launch: Launch): string[] {
    return this.commandFor({ target: '<target>', host: '<host>' }, '<worker script>').slice(0, -1).concat(`<worker script x${launch.count}>`);
  }

  protected async start(launch: Launch): Promise<void> {
    const places = await this.placements(launch.count);
    // Each worker starts on its own; the launch settles through its units.
    launch.tokens.forEach((token, i) => void this.startOne(launch, places[i % places.length]!, token));
  }

  protected configFor(unit: Unit): Partial<WorkerConfig> {
    const d = this.procs.get(unit);
    return d ? { ospid: d.ospid ?? undefined, io: d.child.stdout } : {};
  }

  /** The local command is the worker's process for the driver from its registration on. */
  protected configAfterLaunch(unit: Unit): Partial<WorkerConfig> {
    const d = this.procs.get(unit);
    return d ? { process: d.child } : {};
  }

  private readonly procs = new Map<Unit, RemoteProc>();

  private async startOne(launch: Launch, place: Placement, token: string): Promise<void> {
    await this.slot();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release();
    };
    if (launch.settled) return release();
    let input: string;
    try {
      input = RemoteExecManager.credentialInput(launch.params.env);
    } catch (e) {
      release();
      return this.failSubmission(launch, this.toLaunchError(e));
    }
    const argv = this.commandFor(place, this.remoteScript(launch.params.workerArgv(token)));
    // Its own process group: a Ctrl-C in the driver's terminal is the driver's to handle.
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const proc: RemoteProc = { child, place, ospid: null, stderr: [] };
    let unit: Unit | null = null;
    const n = ++this.seq;
    const forward = (out: NodeJS.WriteStream, line: string) => {
      if (this.ropts.output !== 'ignore') out.write(`      From worker ${unit?.pid ?? '?'}:\t${line}\n`);
    };
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input);
    createInterface({ input: child.stderr! }).on('line', (line) => {
      proc.stderr.push(line);
      if (proc.stderr.length > 50) proc.stderr.shift();
      if (unit) forward(process.stderr, line);
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = unit ? null : OSPID_LINE.exec(line);
      if (!m) return void (unit && forward(process.stdout, line));
      release();
      proc.ospid = Number(m[1]);
      const id = `${place.host}#${n}`;
      unit = this.addRunningUnit(launch, id, id, token, place.host, (u) => this.procs.set(u, proc));
    });
    child.once('error', (e) => proc.stderr.push(e.message));
    child.once('exit', (code, signal) => {
      release();
      const stderr = proc.stderr.join('\n');
      if (!unit) {
        // It never ran: the launch fails with what the command said.
        const what = code === 255 && argv[0] === 'ssh' ? `ssh could not run the worker on ${place.host}` : `${argv[0]} for ${place.host} exited with code ${code ?? signal}`;
        return this.failSubmission(launch, new LaunchError(this.name, what, { code, stderr }));
      }
      this.unitEnded(unit, { code, reason: signal ? `signal ${signal}` : 'exited', stderr });
      this.procs.delete(unit);
    });
  }

  protected async cancel(units: Unit[]): Promise<void> {
    await Promise.all(units.map(async (u) => {
      const d = this.procs.get(u);
      if (!d) return;
      await this.stop(d);
    }));
  }

  /** SIGTERM to the remote process, then SIGKILL, then the local command itself. */
  private async stop(d: RemoteProc): Promise<void> {
    const { child } = d;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const within = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    if (d.ospid) {
      await run(this.killCommand(d.place, d.ospid, 'TERM'), { timeoutMs: 10_000 }).catch(() => undefined);
      if (await within(3000)) return;
      await run(this.killCommand(d.place, d.ospid, 'KILL'), { timeoutMs: 10_000 }).catch(() => undefined);
      if (await within(2000)) return;
    }
    child.kill('SIGKILL');
    await exited;
  }

  private slot(): Promise<void> {
    const max = this.ropts.maxParallel ?? DEFAULT_MAX_PARALLEL;
    if (this.running < max) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((r) => this.slots.push(() => (this.running++, r())));
  }

  private release(): void {
    this.running--;
    this.slots.shift()?.();
  }
}
