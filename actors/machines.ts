/** Which machine folds which kind of actor. Replay and the actor host look machines up here. */
import type { AnyStateMachine } from 'xstate';
import { adapterMachine } from './adapter.ts';
import type { ActorKind } from './events.ts';
import { chunkMachine } from './chunk.ts';
import { darrayMachine } from './darray.ts';
import { jobMachine } from './job.ts';
import { mapMachine } from './map.ts';
import { poolMachine } from './pool.ts';
import { refMachine } from './remote-ref.ts';
import { workerMachine } from './worker.ts';

export const machines: Partial<Record<ActorKind, AnyStateMachine>> = {
  worker: workerMachine,
  ref: refMachine,
  chunk: chunkMachine,
  darray: darrayMachine,
  map: mapMachine,
  adapter: adapterMachine,
  job: jobMachine,
  pool: poolMachine,
};

/** Registers the machine of a kind added by a later module (map, job, pool...). */
export function registerMachine(kind: ActorKind, machine: AnyStateMachine): void {
  machines[kind] = machine;
}

export function machineFor(kind: ActorKind): AnyStateMachine {
  const m = machines[kind];
  if (!m) throw new Error(`no machine is registered for actor kind '${kind}'`);
  return m;
}
