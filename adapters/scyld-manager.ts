/**
 * ScyldManager: workers on the compute nodes of a Scyld Beowulf cluster (ClusterManagers.jl's
 * ScyldManager). `bpstat` lists the nodes that are up; each worker is one `bpsh <node> sh -c ...`
 * that lives as long as the worker.
 *
 * @example
 * await cluster.addprocs(new ScyldManager(), { count: 8 });   // round-robin over the up nodes
 */
import { LaunchError } from '../runtime/transport/errors.ts';
import { RemoteExecManager } from './remote-exec.ts';
import type { Placement, RemoteExecOptions } from './remote-exec.ts';
import { expandTaskList, run } from './shell-scheduler.ts';

export interface ScyldManagerOptions extends RemoteExecOptions {
  /** Use only these node numbers (when up). @default every node that is up */
  nodes?: number[];
}

export class ScyldManager extends RemoteExecManager {
  readonly name = 'scyld';

  constructor(readonly options: ScyldManagerOptions = {}) {
    super('scyld', options);
  }

  protected async placements(count: number): Promise<Placement[]> {
    const { stdout } = await run(['bpstat']);
    let up = parseBpstat(stdout).filter((n) => n.status === 'up').map((n) => n.node);
    if (this.options.nodes) up = up.filter((n) => this.options.nodes!.includes(n));
    if (!up.length) throw new LaunchError(this.name, 'no compute node is up (bpstat)', { stderr: stdout });
    return Array.from({ length: count }, (_, i) => ({ target: String(up[i % up.length]), host: `n${up[i % up.length]}` }));
  }

  protected commandFor(p: Placement, script: string): string[] {
    return ['bpsh', p.target, 'sh', '-c', script];
  }
}

/**
 * Reads `bpstat`'s table: `Node(s) Status Mode User Group`, one line per range of nodes that
 * share a status (`0-3   up   ---x--x--x root root`).
 */
export function parseBpstat(stdout: string): { node: number; status: string }[] {
  const out: { node: number; status: string }[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\d[\d,\-]*)\s+(\S+)/.exec(line);
    if (!m) continue;
    for (const node of expandTaskList(m[1]!)) out.push({ node, status: m[2]! });
  }
  return out.sort((a, b) => a.node - b.node);
}
