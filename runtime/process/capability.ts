/**
 * A capability's worker side: the builtin tasks it serves and what it attaches to a process
 * (the chunk store of arrays). The process that hosts a capability registers it explicitly:
 * `colony worker` for workers, the Cluster facade for the driver.
 */
import type { ProcessNode } from './process-node.ts';
import { labelSpans } from './span-recorder.ts';
import type { SpanLabel } from './span-recorder.ts';
import { registerTasks } from './task.ts';
import type { Task } from './task.ts';

export interface Capability {
  readonly name: string;
  /** Builtin tasks (see `builtinTask`), callable once registered. */
  readonly tasks: readonly Task[];
  /** How the calls of some of these tasks show on the dashboard's timeline (pmap's batches as the mapped task). */
  readonly spanLabels?: readonly (readonly [Task, SpanLabel])[];
  /** Runs once the process's node serves, before it takes calls from the cluster. */
  attach?(node: ProcessNode): Promise<void>;
}

/** Registers the capabilities' tasks and attaches them to `node` (if given). */
export async function hostCapabilities(caps: readonly Capability[], node?: ProcessNode): Promise<void> {
  for (const c of caps) {
    registerTasks(c.tasks);
    for (const [t, label] of c.spanLabels ?? []) labelSpans(t.key, label);
  }
  if (node) for (const c of caps) await c.attach?.(node);
}
