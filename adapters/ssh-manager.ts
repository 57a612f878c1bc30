/**
 * SSHManager: workers on other machines over the system's `ssh` (Julia's SSHManager), so a
 * user's ssh config, agent and keys work as they do in a terminal. Each worker is one ssh session
 * that lives as long as the worker; `maxParallel` bounds the sessions being set up at once.
 *
 * @example
 * const ssh = new SSHManager({ machines: ['node1', 'alice@node2:2222', { host: 'node3', count: 4 }] });
 * await cluster.addprocs(ssh, { count: 6 });   // node1, node2, node3 x4
 */
import { InvalidArgumentError } from '../runtime/transport/errors.ts';
import type { Unit } from './adapter-manager.ts';
import type { WorkerConfig } from './cluster-manager.ts';
import { DEFAULT_MAX_PARALLEL, RemoteExecManager } from './remote-exec.ts';
import type { Placement, RemoteExecOptions } from './remote-exec.ts';

/** `'[user@]host[:port]'`, or `{ host, count }` for `count` workers on that host. */
export type Machine = string | { host: string; count?: number };

export interface SSHManagerOptions extends Omit<RemoteExecOptions, 'exename'> {
  /** The machines; workers go to them in order, one per slot (`count` slots per machine). */
  machines: Machine[];
  /** Extra ssh arguments, e.g. `['-F', 'ssh_config', '-i', 'key']`. */
  sshflags?: string[];
  /** Node on the remote machines. @default the driver's node path */
  exename?: string;
  /** Remote working directory; Colony must be installed at the same path there. @default the driver's cwd */
  dir?: string;
}

interface Host {
  user: string | null;
  host: string;
  port: number | null;
  count: number;
}

/** Parses `'[user@]host[:port]'` (an IPv6 host goes in brackets: `[::1]:22`). */
export function parseMachine(m: Machine): Host {
  const spec = typeof m === 'string' ? m : m.host;
  const count = typeof m === 'string' ? 1 : (m.count ?? 1);
  if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError('machines', `count of '${spec}' must be a whole number >= 1`);
  const r = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s\[\]]+)(?::(\d+))?$/.exec(spec);
  if (!r) throw new InvalidArgumentError('machines', `'${spec}' is not [user@]host[:port]`);
  return { user: r[1] ?? null, host: r[2]!.replace(/^\[|\]$/g, ''), port: r[3] ? Number(r[3]) : null, count };
}

export class SSHManager extends RemoteExecManager {
  readonly name = 'ssh';
  private readonly hosts: Host[];

  constructor(readonly options: SSHManagerOptions) {
    super('ssh', options);
    if (!options || !Array.isArray(options.machines) || options.machines.length === 0) {
      throw new InvalidArgumentError('machines', 'expected at least one machine');
    }
    this.hosts = options.machines.map(parseMachine);
  }

  protected async placements(count: number): Promise<Placement[]> {
    const slots: Placement[] = [];
    for (const h of this.hosts) {
      const target = `${h.user ? `${h.user}@` : ''}${h.host}${h.port ? `:${h.port}` : ''}`;
      for (let i = 0; i < h.count; i++) slots.push({ target, host: h.host });
    }
    return Array.from({ length: count }, (_, i) => slots[i % slots.length]!);
  }

  /** Julia's SSH fields of WorkerConfig, beside the process and pid. */
  protected configFor(unit: Unit): Partial<WorkerConfig> {
    return { ...super.configFor(unit), sshflags: this.options.sshflags ?? [], maxParallel: this.options.maxParallel ?? DEFAULT_MAX_PARALLEL, tunnel: false };
  }

  /** `ssh -T -o BatchMode=yes [flags] [-p port] [user@]host "sh -c '<script>'"`. */
  protected commandFor(p: Placement, script: string): string[] {
    const h = parseMachine(p.target);
    return [
      'ssh', '-T', '-o', 'BatchMode=yes', '-o', 'ClearAllForwardings=yes', ...(this.options.sshflags ?? []),
      ...(h.port ? ['-p', String(h.port)] : []),
      `${h.user ? `${h.user}@` : ''}${h.host}`,
      `sh -c ${shQuote(script)}`,
    ];
  }
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
