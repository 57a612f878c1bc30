/**
 * Distributed arrays (Julia's `DArray`): an N-dimensional, row-major typed array cut into blocks
 * per dimension, each block (chunk) owned by a chunk actor on one process.
 *
 * A `DArray` is a small handle (`id`, `dims`, `dist`, `procs`, `type`): it travels to tasks as an
 * argument and is rebound there, so an init task can read the previous array's halo through it.
 * Reads of chunks the calling process owns are plain copies; other chunks are asked over
 * `colony.<c>.chunk.<array>.<index>`, one request per chunk touched.
 *
 * @example
 * const d = await cluster.darray.zeros(Float64Array, [100, 100, 10], { procs: [2, 3, 4, 5], dist: [1, 4, 1] });
 * const block = await d.get([[0, 2], [20, 30], [0, 10]]);   // 2x10x10, row-major
 * await d.free();
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readSync, unlinkSync } from 'node:fs';
import { addExtension } from 'msgpackr';
import { darrayEvents } from '../../actors/index.ts';
import type { HostedActor } from '../log/actor-host.ts';
import { HOST_KEY, shmTarget } from '../transport/blob.ts';
import type { ShmTarget } from '../transport/blob.ts';
import { chunkStore } from './chunk-store.ts';
import type { ChunkRequest, DirectRead, ReadInto, WrittenRead } from './chunk-store.ts';
import type { ClusterContext } from '../process/context.ts';
import {
  TYPED_ARRAYS, checkDims, checkRanges, chunksTouching, copyBlock, defaultDist, fullRanges, isBigIntType, isContiguous,
  isFloatType, layoutOf, lengthOf, offsetIn, product, typeCtor, typeNameOf,
} from './darray-layout.ts';
import type { Layout, Range, Ranges, TypedArray, TypedArrayConstructor } from './darray-layout.ts';
import { ColonyError, InvalidArgumentError, TaskNotFoundError, fromErrorData, toErrorData } from '../transport/errors.ts';
import type { ProcessNode, Reply } from '../process/process-node.ts';
import { builtinTask, isTask, lookupTask, parseTaskKey } from '../process/task.ts';
import type { Task } from '../process/task.ts';

export type { Range, Ranges, TypedArray, TypedArrayConstructor } from './darray-layout.ts';

/** Where one chunk lives. */
export interface ChunkInfo {
  /** Position in the chunk grid, numbered row-major. */
  index: number;
  /** The owner. */
  pid: number;
  /** The chunk's block: one `[start, end)` per dimension. */
  I: Ranges;
}

/** Placement options of every constructor. */
export interface DArrayOptions {
  /**
   * Pids that own the chunks, in chunk order (chunk k on `procs[k]`).
   * @default the first min(nworkers, max(dims)) workers
   */
  procs?: number[];
  /**
   * Blocks per dimension; their product is the number of procs.
   * @default Julia's defaultdist: the largest prime factors of the proc count go to the largest dimensions
   */
  dist?: number[];
}

/** Options of `cluster.darray.create`. */
export interface CreateOptions extends DArrayOptions {
  /** Element type. @default the type the init task returns */
  type?: TypedArrayConstructor | string;
  /** Extra arguments of the init task, after `I`. DArray handles are fine here. */
  args?: unknown[];
}

/** A reduction: a built-in name or a task of two arguments. */
export type ArrayReducer = '+' | '*' | 'min' | 'max' | Task<[any, any], any>;

/** What a handle carries on the wire. */
export interface DArrayDescriptor {
  id: string;
  dims: number[];
  dist: number[];
  procs: number[];
  type: string;
}

/** Elements of a typed array type: `number`, or `bigint` for the 64-bit integer types. */
export type ElementOf<T extends TypedArray> = T extends BigInt64Array | BigUint64Array ? bigint : number;

/** A chunk read that finds no server is retried this many times (a fresh subscription may still be spreading through a NATS cluster). */
const READ_RETRIES = 3;
/** A `get` of one block at least this big is written by its owners into a shared-memory result. */
const INTO_BYTES = 4 * 1024 * 1024;

/** darray actors of arrays built by this process, by id. */
const hosted = new Map<string, HostedActor>();
let counter = 0;

export class DArray<T extends TypedArray = TypedArray> {
  readonly id: string;
  /** Size per dimension. */
  readonly dims: readonly number[];
  /** Blocks per dimension. */
  readonly dist: readonly number[];
  /** Owner of each chunk, in chunk order. */
  readonly procs: readonly number[];
  /** Element type name, e.g. `Float64Array`. */
  readonly type: string;
  /** Owner and block of each chunk. */
  readonly chunks: readonly ChunkInfo[];
  /** @internal */
  readonly layout: Layout;
  private node: ProcessNode | null;
  private freed = false;

  /** @internal Handles come from `cluster.darray.*` or arrive as task arguments. */
  constructor(desc: DArrayDescriptor, node: ProcessNode | null) {
    this.id = desc.id;
    this.layout = layoutOf(desc.dims, desc.dist);
    this.dims = Object.freeze([...desc.dims]);
    this.dist = Object.freeze([...desc.dist]);
    this.procs = Object.freeze([...desc.procs]);
    this.type = desc.type;
    this.chunks = Object.freeze(this.layout.chunks.map((I, index) => Object.freeze({ index, pid: desc.procs[index]!, I })));
    this.node = node;
  }

  /** Number of elements. */
  get length(): number {
    return product(this.dims);
  }

  get ndims(): number {
    return this.dims.length;
  }

  /** The element type's constructor. */
  get elementType(): TypedArrayConstructor<T> {
    return TYPED_ARRAYS[this.type] as unknown as TypedArrayConstructor<T>;
  }

  /** @internal */
  descriptor(): DArrayDescriptor {
    return { id: this.id, dims: [...this.dims], dist: [...this.dist], procs: [...this.procs], type: this.type };
  }

  /** @internal The process this handle works through. */
  client(): ProcessNode {
    if (this.freed) throw new InvalidArgumentError('darray', `DArray ${this.id} was freed`);
    const node = this.node ?? chunkStore.node;
    if (!node) throw new ColonyError(`DArray ${this.id} is not bound to a cluster in this process`);
    this.node = node;
    return node;
  }

  /**
   * The block `ranges` (one `[start, end)` per dimension; a number `i` means `[i, i + 1)`) as a
   * new row-major typed array. Fetched from every owner it touches, one request per chunk; parts
   * owned by the calling process are copied locally.
   */
  async get(ranges: (Range | number)[]): Promise<T> {
    return (await this.getMany([ranges]))[0]!;
  }

  /** Several blocks at once, with one request per chunk for all of them together (halo reads). */
  async getMany(list: (Range | number)[][]): Promise<T[]> {
    const node = this.client();
    const Ctor = this.elementType;
    const blocks = list.map((r) => checkRanges(r, this.dims));
    // One big block (toArray): the result lives in shared memory, and owners on this host write
    // their parts straight into it, so it is neither copied nor faulted in here.
    const target = blocks.length === 1 && lengthOf(blocks[0]!) * Ctor.BYTES_PER_ELEMENT >= INTO_BYTES
      ? shmTarget(lengthOf(blocks[0]!) * Ctor.BYTES_PER_ELEMENT)
      : null;
    try {
      return await this.readBlocks(node, blocks, target);
    } finally {
      target?.unlink();
    }
  }

  private async readBlocks(node: ProcessNode, blocks: Ranges[], target: ShmTarget | null): Promise<T[]> {
    const Ctor = this.elementType;
    const outs = target
      ? [new Ctor(target.view.buffer, target.view.byteOffset, lengthOf(blocks[0]!))]
      : blocks.map((r) => new Ctor(lengthOf(r)));
    const el = Ctor.BYTES_PER_ELEMENT;
    const intoOf = (parts: Ranges[]): ReadInto | undefined =>
      target && parts.every((p) => isContiguous(blocks[0]!, p))
        ? { file: target.path, at: parts.map((p) => target.dataAt + offsetIn(blocks[0]!, p) * el) }
        : undefined;
    const remote = new Map<number, { parts: Ranges[]; into: number[] }>();
    blocks.forEach((r, j) => {
      for (const { index, part } of chunksTouching(this.layout, r)) {
        const local = chunkStore.get(this.id, index);
        if (local && chunkStore.node === node) {
          copyBlock(local.data, local.I, outs[j]!, r, part);
          continue;
        }
        let req = remote.get(index);
        if (!req) remote.set(index, (req = { parts: [], into: [] }));
        req.parts.push(part);
        req.into.push(j);
      }
    });
    await Promise.all(
      [...remote].map(async ([index, req]) => {
        const into = intoOf(req.parts);
        const got = (await this.request(node, index, { op: 'read', blocks: req.parts, from: node.pid, host: HOST_KEY, ...(into ? { into } : {}) })) as TypedArray | DirectRead | WrittenRead;
        if ('written' in got) return;
        if (!ArrayBuffer.isView(got)) {
          readDirect(got, req.parts, req.parts.map((_, i) => outs[req.into[i]!]!), req.parts.map((_, i) => blocks[req.into[i]!]!));
          return;
        }
        const data = got;
        let off = 0;
        req.parts.forEach((part, i) => {
          const n = lengthOf(part);
          const j = req.into[i]!;
          copyBlock(data.subarray(off, off + n) as TypedArray, part, outs[j]!, blocks[j]!, part);
          off += n;
        });
      }),
    );
    return outs;
  }

  /** Writes `values` (row-major over `ranges`) into the array, on every owner it touches. */
  async set(ranges: (Range | number)[], values: ArrayLike<number> | ArrayLike<bigint> | TypedArray): Promise<void> {
    const node = this.client();
    const r = checkRanges(ranges, this.dims);
    const src = toTyped(values, this.type, lengthOf(r), 'values');
    await Promise.all(
      chunksTouching(this.layout, r).map(async ({ index, part }) => {
        const local = chunkStore.get(this.id, index);
        if (local && chunkStore.node === node) {
          copyBlock(src, r, local.data, local.I, part);
          return;
        }
        const block = isContiguous(r, part) ? (src.subarray(offsetIn(r, part), offsetIn(r, part) + lengthOf(part)) as TypedArray) : extractBlock(src, r, part);
        await this.request(node, index, { op: 'write', block: part, data: block, from: node.pid });
      }),
    );
  }

  /** The whole array in this process (Julia's `convert(Array, d)`). */
  toArray(): Promise<T> {
    return this.get(fullRanges(this.dims));
  }

  /**
   * A new DArray of `f(x)` for every element, computed where the chunks live (Julia's `map`).
   * `f` is a task of one argument; the result has the same placement.
   */
  async map<U extends TypedArray = T>(f: Task<[any], any>, opts: { type?: TypedArrayConstructor<U> | string } = {}): Promise<DArray<U>> {
    const node = this.client();
    if (!isTask(f)) throw new InvalidArgumentError('f', 'map takes a task: export const f = task(import.meta.url, function f(x) {...})');
    const type = opts.type ? typeCtor(opts.type).name : this.type;
    return construct<U>(node, darrayMapInit.key, [...this.dims], [...this.procs], [...this.dist], type, () => [this, f.key, type]);
  }

  /**
   * Reduces every element with `reducer` ('+', '*', 'min', 'max' or a task of two arguments):
   * each owner reduces its chunk, this process combines the results.
   */
  async reduce(reducer: ArrayReducer): Promise<ElementOf<T>> {
    const node = this.client();
    const spec = reducerSpec(reducer);
    const parts = await Promise.all(this.chunks.map((c) => callTask(node, c.pid, darrayReduceChunk, [this, c.index, spec])));
    const fn = typeof reducer === 'function' ? (reducer as (a: unknown, b: unknown) => unknown) : BUILTIN[reducer];
    let acc: unknown;
    let have = false;
    for (const p of parts) {
      if (p === null || p === undefined) continue;
      acc = have ? fn(acc, p) : p;
      have = true;
    }
    if (!have) throw new InvalidArgumentError('darray', `cannot reduce DArray ${this.id}: it has no elements`);
    return acc as ElementOf<T>;
  }

  /** Drops every chunk on its owner and records the array's read totals (`darray.freed`). */
  async free(): Promise<void> {
    if (this.freed) return;
    const node = this.client();
    this.freed = true;
    const counts = await Promise.all(this.chunks.map((c) => freeChunk(node, this.id, c.index, c.pid)));
    const total = { reads: 0, readElements: 0, writes: 0 };
    for (const c of counts) {
      if (!c) continue;
      total.reads += c.reads;
      total.readElements += c.readElements;
      total.writes += c.writes;
    }
    const ev = darrayEvents.freed(Date.now(), { by: node.pid, ...total });
    const actor = hosted.get(this.id);
    if (actor) {
      hosted.delete(this.id);
      if (actor.accepts(ev)) actor.send(ev);
    } else {
      await node.host.appendForeign('darray', this.id, ev).catch(() => undefined);
    }
  }

  toString(): string {
    return `DArray(${this.id}, ${this.type}, [${this.dims.join(', ')}], dist [${this.dist.join(', ')}], procs [${this.procs.join(', ')}])`;
  }

  toJSON(): DArrayDescriptor {
    return this.descriptor();
  }

  /** Sends a request to a chunk's subject and returns `ok`. */
  private async request(node: ProcessNode, index: number, req: ChunkRequest): Promise<unknown> {
    const pid = this.procs[index]!;
    const subject = node.s.chunk(this.id, index);
    const body = node.pack(req);
    for (let attempt = 0; ; attempt++) {
      let reply: Reply;
      try {
        const msg = await node.requester.request(pid, subject, body);
        reply = await node.unpack<Reply>(msg.data);
      } catch (e) {
        if (!isNoResponders(e)) throw e;
        if (attempt < READ_RETRIES) {
          await new Promise((r) => setTimeout(r, 5 * 4 ** attempt));
          continue;
        }
        throw new ColonyError(`chunk ${index} of DArray ${this.id} is not served by pid ${pid}: the array was freed or its owner exited`, { cause: e });
      }
      if (reply.err) throw fromErrorData(reply.err, pid);
      return reply.ok;
    }
  }
}

function isNoResponders(e: unknown): boolean {
  return (e as Error)?.name === 'ProcessExitedError' && /no process answers/.test((e as Error).message);
}

// Handles travel as their descriptor and are rebound to the receiving process.
addExtension({
  Class: DArray as unknown as new () => unknown,
  type: 0x44,
  write: (d: DArray) => d.descriptor(),
  read: (desc: DArrayDescriptor) => new DArray(desc, chunkStore.node),
});

// ---------------------------------------------------------------- helpers

/** Runs a task on `pid` through `node` and returns its result, throwing its error. */
async function callTask(node: ProcessNode, pid: number, t: Task, args: unknown[]): Promise<unknown> {
  const reply = await node.call(pid, t.key, args);
  if (reply.err) throw fromErrorData(reply.err, pid);
  return reply.ok;
}

async function freeChunk(node: ProcessNode, id: string, index: number, pid: number) {
  if (pid === node.pid && chunkStore.node === node) return chunkStore.free(id, index, node.pid);
  try {
    const msg = await node.requester.request(pid, node.s.chunk(id, index), node.pack({ op: 'free', from: node.pid }));
    const reply = await node.unpack<Reply>(msg.data);
    if (reply.err) throw fromErrorData(reply.err, pid);
    return reply.ok as import('../../actors/index.ts').ChunkCounts | null;
  } catch (e) {
    // Already gone: freed before, or its owner exited.
    if (isNoResponders(e) || (e as Error).name === 'ProcessExitedError') return null;
    throw e;
  }
}

/**
 * Reads a direct read's file into the results: parts that are one contiguous run of their result
 * are read straight into it, others through a buffer. Removes the file.
 */
function readDirect(d: DirectRead, parts: Ranges[], outs: TypedArray[], outAt: Ranges[]): void {
  const fd = openSync(d.file, 'r');
  try {
    let pos = 0;
    parts.forEach((part, i) => {
      const out = outs[i]!;
      const el = out.BYTES_PER_ELEMENT;
      const n = lengthOf(part);
      let target: TypedArray;
      if (isContiguous(outAt[i]!, part)) {
        const o = offsetIn(outAt[i]!, part);
        target = out.subarray(o, o + n) as TypedArray;
      } else {
        target = new (TYPED_ARRAYS[typeNameOf(out)!]!)(n);
      }
      const bytes = new Uint8Array(target.buffer, target.byteOffset, n * el);
      for (let done = 0; done < bytes.length; ) {
        const k = readSync(fd, bytes, done, bytes.length - done, pos + done);
        if (k === 0) throw new ColonyError(`direct read ${d.file} ended after ${pos + done} of ${d.bytes} bytes`);
        done += k;
      }
      if (!isContiguous(outAt[i]!, part)) copyBlock(target, part, out, outAt[i]!, part);
      pos += n * el;
    });
  } finally {
    closeSync(fd);
    try {
      unlinkSync(d.file);
    } catch {
      /* removed by its owner's timer */
    }
  }
}

function extractBlock(src: TypedArray, at: Ranges, part: Ranges): TypedArray {
  const Ctor = TYPED_ARRAYS[typeNameOf(src)!]!;
  const out = new Ctor(lengthOf(part));
  copyBlock(src, at, out, part, part);
  return out;
}

/** `values` as a typed array of `type` with `n` elements (a copy only when conversion is needed). */
function toTyped(values: unknown, type: string, n: number, field: string): TypedArray {
  const Ctor = TYPED_ARRAYS[type]!;
  const name = typeNameOf(values);
  let out: TypedArray;
  if (name === type) {
    const v = values as TypedArray;
    out = v.constructor === Ctor ? v : new Ctor(v.buffer, v.byteOffset, v.length);
  } else if (name !== null || Array.isArray(values)) {
    const src = values as ArrayLike<number | bigint>;
    out = new Ctor(src.length);
    const big = isBigIntType(type);
    for (let i = 0; i < src.length; i++) (out as unknown as (number | bigint)[])[i] = big ? BigInt(src[i]!) : Number(src[i]!);
  } else {
    throw new InvalidArgumentError(field, `expected a typed array or an array of numbers, got ${Object.prototype.toString.call(values)}`);
  }
  if (out.length !== n) throw new InvalidArgumentError(field, `expected ${n} elements, got ${out.length}`);
  return out;
}

/** Chunk data from what an init task returned. */
function toChunkData(result: unknown, I: Ranges, type: string | null, init: string): { data: TypedArray; type: string } {
  const n = lengthOf(I);
  const name = typeNameOf(result);
  const want = type ?? (name ?? (Array.isArray(result) && typeof result[0] === 'bigint' ? 'BigInt64Array' : 'Float64Array'));
  if (name === null && !Array.isArray(result)) {
    const { name: fn } = parseTaskKey(init);
    throw new InvalidArgumentError('init', `init task '${fn}' must return a typed array (or an array of numbers) of the chunk's ${n} elements; got ${Object.prototype.toString.call(result)}`);
  }
  const len = (result as ArrayLike<unknown>).length;
  if (len !== n) {
    const { name: fn } = parseTaskKey(init);
    throw new InvalidArgumentError('init', `init task '${fn}' returned ${len} elements for block ${JSON.stringify(I)}; expected ${n} (the product of the block's lengths)`);
  }
  return { data: toTyped(result, want, n, 'init'), type: want };
}

/** Resolves procs and dist with Julia's rules. `workers` are the pids usable by default. */
export function placement(dims: number[], workers: readonly number[], procs?: number[], dist?: number[]): { procs: number[]; dist: number[] } {
  if (procs !== undefined) {
    if (!Array.isArray(procs) || procs.length === 0 || !procs.every((p) => Number.isInteger(p) && p >= 1)) {
      throw new InvalidArgumentError('procs', `expected a non-empty list of pids, got ${JSON.stringify(procs)}`);
    }
  }
  if (dist !== undefined) layoutOf(dims, dist); // validates
  if (procs && dist) {
    if (product(dist) !== procs.length) {
      throw new InvalidArgumentError('dist', `the product of dist [${dist.join(', ')}] is ${product(dist)}, but there are ${procs.length} procs; they must be equal`);
    }
    return { procs: [...procs], dist: [...dist] };
  }
  if (dist) {
    const n = product(dist);
    if (n > workers.length) throw new InvalidArgumentError('dist', `dist [${dist.join(', ')}] needs ${n} procs but there are ${workers.length} workers; pass procs explicitly or add workers`);
    return { procs: workers.slice(0, n), dist: [...dist] };
  }
  const pool = procs ?? workers.slice(0, Math.max(1, Math.min(workers.length, Math.max(...dims))));
  const d = defaultDist(dims, pool.length);
  return { procs: pool.slice(0, product(d)), dist: d };
}

/**
 * Builds a DArray: runs `init(I, ...argsFor(k))` on the owner of every chunk k, in parallel, and
 * records the placement (`darray.created`). If any init fails, the chunks placed so far are freed,
 * `darray.failed` is recorded and the first error is thrown.
 */
export async function construct<T extends TypedArray>(
  node: ProcessNode,
  init: string,
  dims: number[],
  procs: number[],
  dist: number[],
  type: string | null,
  argsFor: (index: number) => unknown[],
): Promise<DArray<T>> {
  const id = `d${node.nonce}x${++counter}`;
  const desc: DArrayDescriptor = { id, dims, dist, procs, type: type ?? '' };
  const layout = layoutOf(dims, dist);
  const results = await Promise.allSettled(
    layout.chunks.map((_, index) => callTask(node, procs[index]!, darrayPlace, [{ d: desc, index, init, args: argsFor(index), type }]) as Promise<PlaceResult>),
  );
  let failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as Error | undefined;
  const types = new Set<string>();
  results.forEach((r, k) => {
    if (r.status === 'fulfilled' && lengthOf(layout.chunks[k]!) > 0) types.add(r.value.type);
  });
  if (!failure && types.size > 1) {
    failure = new InvalidArgumentError('init', `the init task returned different element types on different chunks (${[...types].join(', ')}); pass { type } to create()`);
  }
  const actor = node.host.create('darray', id);
  if (failure) {
    await Promise.all(results.map((r, k) => (r.status === 'fulfilled' ? freeChunk(node, id, k, procs[k]!).catch(() => null) : null)));
    actor.send(darrayEvents.failed(Date.now(), { dims, procs, creator: node.pid, error: toErrorData(failure) }));
    throw failure;
  }
  desc.type = type ?? [...types][0] ?? (results[0] as PromiseFulfilledResult<PlaceResult>).value.type;
  actor.send(darrayEvents.created(Date.now(), {
    dims, dist, procs, type: desc.type, creator: node.pid, chunks: layout.chunks.map((I, k) => ({ pid: procs[k]!, I })),
  }));
  hosted.set(id, actor);
  return new DArray<T>(desc, node);
}

interface PlaceSpec {
  d: DArrayDescriptor;
  index: number;
  init: string;
  args: unknown[];
  type: string | null;
}
interface PlaceResult {
  type: string;
  length: number;
}

// ---------------------------------------------------------------- tasks that run on the owners

/** @internal Runs the init of one chunk on its owner and keeps the result there. */
export const darrayPlace = builtinTask('arrays', async function darrayPlace(spec: PlaceSpec): Promise<PlaceResult> {
  const node = chunkStore.need();
  const I = layoutOf(spec.d.dims, spec.d.dist).chunks[spec.index]!;
  const fn = lookupTask(spec.init);
  if (!fn) {
    const { module, name } = parseTaskKey(spec.init);
    throw new TaskNotFoundError(module, name, node.pid);
  }
  const result = await fn(I.map((r) => [r[0], r[1]]), ...spec.args);
  const { data, type } = toChunkData(result, I, spec.type, spec.init);
  await chunkStore.place(spec.d.id, spec.index, I, data, type);
  return { type, length: data.length };
});

/** @internal zeros, ones and fill. */
export const darrayFill = builtinTask('arrays', function darrayFill(I: Ranges, type: string, value: number | bigint): TypedArray {
  const a = new TYPED_ARRAYS[type]!(lengthOf(I));
  if (value !== 0 && value !== 0n) (a as unknown as { fill(v: number | bigint): void }).fill(value);
  return a;
});

/** @internal Uniform random: [0, 1) for floats, the type's whole range for integers. */
export const darrayRand = builtinTask('arrays', function darrayRand(I: Ranges, type: string): TypedArray {
  const a = new TYPED_ARRAYS[type]!(lengthOf(I));
  if (isFloatType(type)) {
    for (let i = 0; i < a.length; i++) (a as Float64Array)[i] = Math.random();
  } else {
    randomFillSync(a);
  }
  return a;
});

/** @internal Standard normal (Box-Muller). */
export const darrayRandn = builtinTask('arrays', function darrayRandn(I: Ranges, type: string): TypedArray {
  const a = new TYPED_ARRAYS[type]!(lengthOf(I)) as Float64Array;
  for (let i = 0; i < a.length; i += 2) {
    const u = 1 - Math.random();
    const v = Math.random();
    const r = Math.sqrt(-2 * Math.log(u));
    a[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < a.length) a[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return a;
});

/** @internal distribute: the block arrives as the argument. */
export const darrayBlock = builtinTask('arrays', function darrayBlock(_I: Ranges, block: TypedArray): TypedArray {
  return block;
});

/** The local chunk of `d` whose block is `I`, if this process owns it. */
function localChunk(d: DArray, I: Ranges) {
  const k = d.chunks.findIndex((c) => c.I.every(([s, e], i) => s === I[i]![0] && e === I[i]![1]));
  return k < 0 ? undefined : chunkStore.get(d.id, k);
}

/** @internal map: applies the task `fkey` to every element of the matching chunk of `d`. */
export const darrayMapInit = builtinTask('arrays', async function darrayMapInit(I: Ranges, d: DArray, fkey: string, type: string): Promise<TypedArray> {
  const fn = lookupTask(fkey);
  if (!fn) {
    const { module, name } = parseTaskKey(fkey);
    throw new TaskNotFoundError(module, name, chunkStore.need().pid);
  }
  const src = localChunk(d, I)?.data ?? (await d.get(I));
  const out = new TYPED_ARRAYS[type]!(src.length) as unknown as (number | bigint)[];
  const s = src as unknown as (number | bigint)[];
  for (let i = 0; i < s.length; i++) out[i] = fn(s[i]) as number;
  return out as unknown as TypedArray;
});

const BUILTIN: Record<string, (a: any, b: any) => any> = {
  '+': (a, b) => a + b,
  '*': (a, b) => a * b,
  min: (a, b) => (b < a ? b : a),
  max: (a, b) => (b > a ? b : a),
};

function reducerSpec(reducer: ArrayReducer): string {
  if (typeof reducer === 'string') {
    if (!(reducer in BUILTIN)) throw new InvalidArgumentError('reducer', `expected '+', '*', 'min', 'max' or a task of two arguments, got '${reducer}'`);
    return reducer;
  }
  if (!isTask(reducer)) throw new InvalidArgumentError('reducer', "expected '+', '*', 'min', 'max' or a task of two arguments");
  return `task:${reducer.key}`;
}

/** @internal reduce: folds one chunk on its owner; null for an empty chunk. */
export const darrayReduceChunk = builtinTask('arrays', function darrayReduceChunk(d: DArray, index: number, spec: string): number | bigint | null {
  const chunk = chunkStore.get(d.id, index);
  if (!chunk) throw new ColonyError(`chunk ${index} of DArray ${d.id} is not on pid ${chunkStore.need().pid}`);
  let fn: (a: any, b: any) => any;
  if (spec.startsWith('task:')) {
    const key = spec.slice(5);
    const f = lookupTask(key);
    if (!f) {
      const { module, name } = parseTaskKey(key);
      throw new TaskNotFoundError(module, name, chunkStore.need().pid);
    }
    fn = f as (a: unknown, b: unknown) => unknown;
  } else {
    fn = BUILTIN[spec]!;
  }
  const a = chunk.data as unknown as ArrayLike<number | bigint>;
  if (a.length === 0) return null;
  let acc = a[0]!;
  if (spec === '+') {
    for (let i = 1; i < a.length; i++) (acc as number) += a[i] as number;
  } else {
    for (let i = 1; i < a.length; i++) acc = fn(acc, a[i]);
  }
  return acc;
});

// ---------------------------------------------------------------- cluster.darray

/** The constructors behind `cluster.darray`. */
export interface DArrayConstructors {
  /** `dzeros`: an array of zeros. */
  zeros<C extends TypedArrayConstructor>(type: C, dims: number | number[], opts?: DArrayOptions): Promise<DArray<InstanceOf<C>>>;
  /** `dones`. */
  ones<C extends TypedArrayConstructor>(type: C, dims: number | number[], opts?: DArrayOptions): Promise<DArray<InstanceOf<C>>>;
  /** `drand`: [0, 1) for floats, the whole range for integer types. */
  rand<C extends TypedArrayConstructor>(type: C, dims: number | number[], opts?: DArrayOptions): Promise<DArray<InstanceOf<C>>>;
  /** `drandn`: standard normal (Float32Array or Float64Array). */
  randn<C extends TypedArrayConstructor>(type: C, dims: number | number[], opts?: DArrayOptions): Promise<DArray<InstanceOf<C>>>;
  /** `dfill`: every element `value`. */
  fill<C extends TypedArrayConstructor>(type: C, value: number | bigint, dims: number | number[], opts?: DArrayOptions): Promise<DArray<InstanceOf<C>>>;
  /**
   * `distribute`: cuts a local array into chunks on the procs. `array` is row-major with shape
   * `dims` (default: one dimension of its length). Plain arrays become Float64Array unless
   * `type` says otherwise.
   */
  distribute<A extends TypedArray>(array: A | number[], dims?: number | number[], opts?: DArrayOptions & { type?: TypedArrayConstructor | string }): Promise<DArray<A>>;
  /**
   * `DArray(init, dims, procs, dist)`: runs `init(I, ...args)` on the owner of each chunk, where
   * `I` is the chunk's block (one `[start, end)` per dimension); it returns the chunk's elements,
   * row-major.
   */
  create<T extends TypedArray = TypedArray>(init: Task<any[], T | Promise<T> | number[] | Promise<number[]>>, dims: number | number[], opts?: CreateOptions): Promise<DArray<T>>;
}

/** The instance type of a typed array constructor. */
export type InstanceOf<C> = C extends TypedArrayConstructor<infer T> ? T : TypedArray;

/** The `cluster.darray` object of a cluster. */
export function darrayConstructors(cluster: ClusterContext): DArrayConstructors {
  const start = (dims: number | number[], opts: DArrayOptions = {}) => {
    const node = cluster.node;
    chunkStore.bind(node);
    const d = checkDims(dims);
    const { procs, dist } = placement(d, cluster.workers(), opts.procs, opts.dist);
    const live = new Set(cluster.procs());
    for (const p of procs) if (!live.has(p)) throw new InvalidArgumentError('procs', `no process ${p}; processes are ${[...live].join(', ')}`);
    return { node, dims: d, procs, dist };
  };
  const filled = async (type: unknown, value: number | bigint, dims: number | number[], opts?: DArrayOptions) => {
    const t = typeCtor(type).name;
    const v = isBigIntType(t) ? BigInt(value) : Number(value);
    const s = start(dims, opts);
    return construct(s.node, darrayFill.key, s.dims, s.procs, s.dist, t, () => [t, v]);
  };
  return {
    zeros: (type, dims, opts) => filled(type, 0, dims, opts) as never,
    ones: (type, dims, opts) => filled(type, 1, dims, opts) as never,
    fill: (type, value, dims, opts) => filled(type, value, dims, opts) as never,
    async rand(type, dims, opts) {
      const t = typeCtor(type).name;
      const s = start(dims, opts);
      return construct(s.node, darrayRand.key, s.dims, s.procs, s.dist, t, () => [t]) as never;
    },
    async randn(type, dims, opts) {
      const t = typeCtor(type).name;
      if (!isFloatType(t)) throw new InvalidArgumentError('type', `randn makes normally distributed floats: use Float64Array or Float32Array, not ${t}`);
      const s = start(dims, opts);
      return construct(s.node, darrayRandn.key, s.dims, s.procs, s.dist, t, () => [t]) as never;
    },
    async distribute(array, dims, opts = {}) {
      const name = typeNameOf(array);
      const type = opts.type ? typeCtor(opts.type).name : (name ?? 'Float64Array');
      const len = (array as ArrayLike<unknown>)?.length;
      if (name === null && !Array.isArray(array)) throw new InvalidArgumentError('array', 'distribute takes a typed array or an array of numbers');
      const src = toTyped(array, type, len, 'array');
      const d = checkDims(dims ?? [len]);
      if (product(d) !== len) throw new InvalidArgumentError('dims', `dims [${d.join(', ')}] hold ${product(d)} elements, the array has ${len}`);
      const s = start(d, opts);
      const all = fullRanges(d);
      const layout = layoutOf(d, s.dist);
      return construct(s.node, darrayBlock.key, d, s.procs, s.dist, type, (k) => {
        const I = layout.chunks[k]!;
        // A chunk that stays in this process must not share memory with the caller's array.
        const local = s.procs[k] === s.node.pid;
        if (isContiguous(all, I) && !local) return [src.subarray(offsetIn(all, I), offsetIn(all, I) + lengthOf(I))];
        return [extractBlock(src, all, I)];
      }) as never;
    },
    async create(init, dims, opts = {}) {
      if (!isTask(init)) throw new InvalidArgumentError('init', 'create takes an init task: export const init = task(import.meta.url, function init(I, ...args) {...})');
      const t = opts.type ? typeCtor(opts.type).name : null;
      const s = start(dims, opts);
      const args = opts.args ?? [];
      return construct(s.node, init.key, s.dims, s.procs, s.dist, t, () => args) as never;
    },
  };
}

