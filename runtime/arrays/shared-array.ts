/**
 * Shared arrays (Julia's `SharedArray`): one typed array in real shared memory, mapped into every
 * participating process of one host. A write by one process is seen by the others at once, with
 * no copy and no message.
 *
 * The memory is a POSIX shared memory object, a file in `/dev/shm`, mapped with `MAP_SHARED` by
 * the native package `shm-typed-array`. The file is removed when the array is freed, when the
 * cluster that made it closes, or when the process that made it exits; each process unmaps its
 * view once nothing references it any more.
 *
 * @example
 * // tasks.ts
 * export const fillMine = builtinTask('arrays', function fillMine(S: SharedArray<Int32Array>) {
 *   const [start, end] = localindexes(S);
 *   sdata(S).fill(myid(), start, end);
 * });
 * // driver
 * const S = await cluster.sharedArray(Int32Array, [3, 4], { init: fillMine });
 * sdata(S);   // Int32Array [2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4] with 3 workers
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addExtension } from 'msgpackr';
import { HOST_KEY } from '../transport/blob.ts';
import { chunkStore } from './chunk-store.ts';
import type { ClusterContext } from '../process/context.ts';
import { TYPED_ARRAYS, checkDims, linearSlice, product, stridesOf, typeCtor } from './darray-layout.ts';
import type { Range, TypedArray, TypedArrayConstructor } from './darray-layout.ts';
import { ColonyError, InvalidArgumentError, TaskNotFoundError, fromErrorData } from '../transport/errors.ts';
import { myid } from '../process/myid.ts';
import type { ProcessNode } from '../process/process-node.ts';
import { builtinTask, isTask, lookupTask, parseTaskKey } from '../process/task.ts';
import type { Task } from '../process/task.ts';

/** Options of `cluster.sharedArray`. */
export interface SharedArrayOptions {
  /** The participating processes; all must run on one host. @default every worker */
  pids?: number[];
  /** A task called as `init(S)` on every participating process, in parallel, before the array is returned. */
  init?: Task<[SharedArray<any>], unknown>;
}

/** What a handle carries on the wire. */
export interface SharedArrayDescriptor {
  id: string;
  /** POSIX shared memory name: the file is `/dev/shm` + name. */
  name: string;
  type: string;
  dims: number[];
  pids: number[];
  /** Host key (host name and boot id) of the machine whose memory holds the array. */
  host: string;
}

/** The part of shm-typed-array that is used here. */
interface ShmModule {
  create(count: number, typeKey: 'Buffer', key: string, perm?: string): Buffer | null;
  get(key: string, typeKey: 'Buffer'): Buffer | null;
  detach(key: string, forceDestroy?: boolean): number;
}

let shmModule: ShmModule | null = null;
function shm(): ShmModule {
  if (shmModule) return shmModule;
  try {
    shmModule = createRequire(import.meta.url)('shm-typed-array') as ShmModule;
  } catch (e) {
    throw new ColonyError(
      `SharedArray needs the native package shm-typed-array, which did not load here (${(e as Error).message}). ` +
        'Build it with `npm rebuild shm-typed-array` (it needs python3, make and g++).',
      { cause: e },
    );
  }
  return shmModule;
}

/** Views mapped in this process, by shm name. */
const mapped = new Map<string, TypedArray>();
/** Unmaps a mapping once no view of it is reachable (unmapping earlier would crash a reader). */
const unmapper = new FinalizationRegistry<string>((name) => {
  if (mapped.has(name)) return;
  try {
    shm().detach(name, false);
  } catch {
    /* already gone */
  }
});
/** Files this process created and has not removed. */
const created = new Set<string>();
process.once('exit', () => {
  for (const name of created) removeFile(name);
});

function removeFile(name: string): void {
  created.delete(name);
  try {
    unlinkSync(`/dev/shm${name}`);
  } catch {
    /* removed already */
  }
}

function hostName(key: string): string {
  return key.split('/')[0] || key;
}

export class SharedArray<T extends TypedArray = TypedArray> {
  readonly id: string;
  /** Size per dimension (row-major). */
  readonly dims: readonly number[];
  /** The participating processes. */
  readonly pids: readonly number[];
  /** Element type name, e.g. `Int32Array`. */
  readonly type: string;
  /** @internal */
  readonly name: string;
  /** @internal Host key of the memory. */
  readonly host: string;
  private freed = false;

  /** @internal Arrays come from `cluster.sharedArray` or arrive as task arguments. */
  constructor(desc: SharedArrayDescriptor) {
    this.id = desc.id;
    this.name = desc.name;
    this.type = desc.type;
    this.dims = Object.freeze([...desc.dims]);
    this.pids = Object.freeze([...desc.pids]);
    this.host = desc.host;
  }

  get length(): number {
    return product(this.dims);
  }

  /** The element type's constructor. */
  get elementType(): TypedArrayConstructor<T> {
    return TYPED_ARRAYS[this.type] as unknown as TypedArrayConstructor<T>;
  }

  /** @internal */
  descriptor(): SharedArrayDescriptor {
    return { id: this.id, name: this.name, type: this.type, dims: [...this.dims], pids: [...this.pids], host: this.host };
  }

  /** Row-major linear index of an N-dimensional index. */
  linear(index: readonly number[]): number {
    if (index.length !== this.dims.length) throw new InvalidArgumentError('index', `expected ${this.dims.length} indexes, got ${index.length}`);
    const str = stridesOf(this.dims);
    let k = 0;
    for (let i = 0; i < index.length; i++) {
      const x = index[i]!;
      if (!Number.isInteger(x) || x < 0 || x >= this.dims[i]!) throw new InvalidArgumentError('index', `index ${x} is outside [0, ${this.dims[i]}) in dimension ${i}`);
      k += x * str[i]!;
    }
    return k;
  }

  /** The element at an N-dimensional index (0-based). */
  at(...index: number[]): T extends BigInt64Array | BigUint64Array ? bigint : number {
    return (this.data() as unknown as (number | bigint)[])[this.linear(index)] as never;
  }

  /** Sets the element at an N-dimensional index (0-based): `S.set([2, 1], 7)`. */
  set(index: readonly number[], value: number | bigint): void {
    (this.data() as unknown as (number | bigint)[])[this.linear(index)] = value;
  }

  /** @internal The view in this process, mapped on first use. */
  data(): T {
    if (this.freed) throw new InvalidArgumentError('sharedArray', `SharedArray ${this.id} was freed`);
    const have = mapped.get(this.name);
    if (have) return have as T;
    if (this.host !== HOST_KEY) {
      throw new ColonyError(
        `SharedArray ${this.id} lives in the memory of host '${hostName(this.host)}'; pid ${myid()} runs on '${hostName(HOST_KEY)}' and cannot map it`,
      );
    }
    const buf = this.length === 0 ? Buffer.alloc(0) : shm().get(this.name, 'Buffer');
    if (!buf) throw new ColonyError(`SharedArray ${this.id} is gone (${this.name} no longer exists: it was freed, or its cluster closed)`);
    const view = new (this.elementType as TypedArrayConstructor)(buf.buffer, buf.byteOffset, this.length) as T;
    mapped.set(this.name, view);
    if (this.length > 0) unmapper.register(buf.buffer, this.name);
    return view;
  }

  /** Removes the memory: the file goes at once; each process's mapping goes when unreferenced. */
  async free(): Promise<void> {
    if (this.freed) return;
    this.freed = true;
    mapped.delete(this.name);
    if (created.has(this.name)) removeFile(this.name);
    const node = chunkStore.node;
    if (!node) return;
    await Promise.all(
      this.pids.filter((p) => p !== node.pid).map((p) => node.call(p, sharedRelease.key, [this.name]).catch(() => undefined)),
    );
  }

  toString(): string {
    return `SharedArray(${this.id}, ${this.type}, [${this.dims.join(', ')}], pids [${this.pids.join(', ')}])`;
  }

  toJSON(): SharedArrayDescriptor {
    return this.descriptor();
  }
}

addExtension({
  Class: SharedArray as unknown as new () => unknown,
  type: 0x53,
  write: (s: SharedArray) => s.descriptor(),
  read: (desc: SharedArrayDescriptor) => new SharedArray(desc),
});

/** `sdata(S)`: the typed array itself, in shared memory (mapped on first use in this process). */
export function sharedData<T extends TypedArray>(S: SharedArray<T>): T {
  return S.data();
}

/** `localindexes(S)`: this process's `[start, end)` slice of the linear indexes; empty if it does not take part. */
export function sharedLocalIndexes(S: SharedArray): Range {
  const i = S.pids.indexOf(myid());
  if (i < 0) return [0, 0];
  return linearSlice(S.length, S.pids.length, i);
}

// ---------------------------------------------------------------- tasks

/** @internal This process's host key. */
export const sharedHostKey = builtinTask('arrays', function sharedHostKey(): string {
  return HOST_KEY;
});

/** @internal Creates the shared memory file on this host (used when the creator is elsewhere). */
export const sharedCreate = builtinTask('arrays', function sharedCreate(desc: SharedArrayDescriptor): boolean {
  createFile(desc);
  return true;
});

/** @internal Runs the user's init on this process. */
export const sharedInit = builtinTask('arrays', async function sharedInit(S: SharedArray, key: string): Promise<void> {
  const fn = lookupTask(key);
  if (!fn) {
    const { module, name } = parseTaskKey(key);
    throw new TaskNotFoundError(module, name, myid());
  }
  await fn(S);
});

/** @internal Drops this process's view of a freed array. */
export const sharedRelease = builtinTask('arrays', function sharedRelease(name: string): boolean {
  mapped.delete(name);
  if (created.has(name)) removeFile(name);
  return true;
});

function createFile(desc: SharedArrayDescriptor): void {
  const bytes = product(desc.dims) * TYPED_ARRAYS[desc.type]!.BYTES_PER_ELEMENT;
  if (bytes === 0) return;
  const buf = shm().create(bytes, 'Buffer', desc.name, '600');
  if (!buf) throw new ColonyError(`shared memory ${desc.name} exists already`);
  created.add(desc.name);
  mapped.set(desc.name, new (TYPED_ARRAYS[desc.type] as TypedArrayConstructor)(buf.buffer, buf.byteOffset, product(desc.dims)));
  unmapper.register(buf.buffer, desc.name);
}

async function call(node: ProcessNode, pid: number, t: Task, args: unknown[]): Promise<unknown> {
  const reply = await node.call(pid, t.key, args);
  if (reply.err) throw fromErrorData(reply.err, pid);
  return reply.ok;
}

/** Arrays made through each cluster, removed when its connection closes. */
const byCluster = new WeakMap<ClusterContext, Set<string>>();

/**
 * `cluster.sharedArray(type, dims, { pids, init })`. Every pid must run on one host; the memory
 * is created by the driver when it runs there too, else by the first pid.
 */
export async function createSharedArray<C extends TypedArrayConstructor>(
  cluster: ClusterContext,
  type: C,
  dims: number | number[],
  opts: SharedArrayOptions = {},
): Promise<SharedArray<C extends TypedArrayConstructor<infer T> ? T : TypedArray>> {
  const t = typeCtor(type).name;
  const d = checkDims(dims);
  const node = cluster.node;
  chunkStore.bind(node);
  const live = new Set(cluster.procs());
  const pids = opts.pids ?? cluster.workers();
  if (!Array.isArray(pids) || pids.length === 0) throw new InvalidArgumentError('pids', `expected a non-empty list of pids, got ${JSON.stringify(pids)}`);
  for (const p of pids) if (!live.has(p)) throw new InvalidArgumentError('pids', `no process ${p}; processes are ${[...live].join(', ')}`);
  if (new Set(pids).size !== pids.length) throw new InvalidArgumentError('pids', `pids must be distinct, got ${JSON.stringify(pids)}`);
  if (opts.init !== undefined && !isTask(opts.init)) throw new InvalidArgumentError('init', 'init must be a task: export const init = task(import.meta.url, function init(S) {...})');

  const keys = await Promise.all(pids.map((p) => (p === node.pid ? HOST_KEY : (call(node, p, sharedHostKey, []) as Promise<string>))));
  const host = keys[0]!;
  const away = pids.filter((_, i) => keys[i] !== host);
  if (away.length) {
    const where = away.map((p) => `pid ${p} on '${hostName(keys[pids.indexOf(p)]!)}'`).join(', ');
    throw new InvalidArgumentError(
      'pids',
      `a SharedArray lives in the memory of one host, but ${where} ${away.length === 1 ? 'is' : 'are'} not on '${hostName(host)}' with pid ${pids[0]}; ` +
        'pick pids of one host (see cluster.workerInfo()) or use a DArray',
    );
  }
  const id = `s${node.nonce}${randomBytes(3).toString('hex')}`;
  const desc: SharedArrayDescriptor = { id, name: `/colony-${cluster.name}-${id}`, type: t, dims: d, pids: [...pids], host };
  if (host === HOST_KEY) {
    createFile(desc);
    let set = byCluster.get(cluster);
    if (!set) {
      byCluster.set(cluster, (set = new Set()));
      const names = set;
      void cluster.nc.closed().then(() => {
        for (const n of names) if (created.has(n)) removeFile(n);
      });
    }
    set.add(desc.name);
  } else {
    await call(node, pids[0]!, sharedCreate, [desc]);
  }
  const S = new SharedArray(desc) as SharedArray<never>;
  if (opts.init) {
    const key = opts.init.key;
    try {
      await Promise.all(pids.map((p) => call(node, p, sharedInit, [S, key])));
    } catch (e) {
      await S.free();
      throw e;
    }
  }
  return S;
}
