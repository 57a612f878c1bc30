// Pure machines and their persisted event types. Nothing here does I/O.
export { ENVELOPE_VERSION, actorEvent, eventOf, stateString } from './events.ts';
export type { ActorEvent, ActorKind, Envelope } from './events.ts';
export { workerMachine, workerEvents } from './worker.ts';
export type { WorkerContext, WorkerEvent } from './worker.ts';
export { refMachine, refEvents } from './remote-ref.ts';
export type { ErrorData, RefContext, RefEvent } from './remote-ref.ts';
export { mapMachine, mapEvents } from './map.ts';
export type { MapContext, MapEvent } from './map.ts';
export { chunkMachine, chunkEvents } from './chunk.ts';
export type { ChunkContext, ChunkCounts, ChunkEvent } from './chunk.ts';
export { darrayMachine, darrayEvents } from './darray.ts';
export type { DarrayContext, DarrayEvent } from './darray.ts';
export { adapterEvents, adapterMachine, adapterTarget, applyAdapterEvent, liveState } from './adapter.ts';
export type { AdapterContext, AdapterError, AdapterEvent, AdapterUnit } from './adapter.ts';
export { machines, machineFor, registerMachine } from './machines.ts';
export { fold, foldStep, initialSnapshot, persistable, restoreSnapshot } from './fold.ts';
export type { FoldMismatch, FoldResult, StepResult } from './fold.ts';
