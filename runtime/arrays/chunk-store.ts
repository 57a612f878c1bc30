/**
 * The chunks of distributed arrays that this process owns, each behind a chunk actor, and the
 * server of their subjects: `colony.<c>.chunk.<array>.<index>` answers reads and writes of
 * sub-blocks (halo reads) and the free of the chunk.
 *
 * There is one store per process, bound to the process's {@link ProcessNode}: workers bind it at
 * start ({@link attachArrays}), the driver when it first builds an array. Code running on the
 * owner reads a chunk here directly, without a message.
 */
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { chunkEvents } from '../../actors/index.ts';
import type { ChunkCounts } from '../../actors/index.ts';
import type { HostedActor } from '../log/actor-host.ts';
import { HOST_KEY, isShmTarget } from '../transport/blob.ts';
import { copyBlock, lengthOf, shapeOf } from './darray-layout.ts';
import type { Ranges, TypedArray } from './darray-layout.ts';
import { ColonyError, InvalidArgumentError, toErrorData } from '../transport/errors.ts';
import type { ProcessNode, Reply } from '../process/process-node.ts';

/** A chunk read counter event is written at most this often per chunk while it is read. */
export const COUNT_EVERY_MS = 5000;

/**
 * A read of at least this many bytes by a process of the same host is handed over in a file in
 * /dev/shm, which the reader reads straight into its result (one copy less than a message).
 */
export const DIRECT_READ_BYTES = 1024 * 1024;
/** An untaken direct-read file is removed after this long. */
const DIRECT_TTL_MS = 60_000;

/** A read handed over in a file: the reader reads `bytes` bytes from `file`, then removes it. */
export interface DirectRead {
  file: string;
  bytes: number;
}

/**
 * Where a reader of this host wants the blocks of a read written: a file made by `shmTarget`
 * (runtime/blob.ts) that it has mapped, and the byte position of each block in it.
 */
export interface ReadInto {
  file: string;
  at: number[];
}

/** The answer to a read written into the reader's file: how many bytes. */
export interface WrittenRead {
  written: number;
}

/** A request on a chunk subject. `host` is the reader's host key (for direct reads). */
export type ChunkRequest =
  | { op: 'read'; blocks: Ranges[]; from: number; host?: string; into?: ReadInto }
  | { op: 'write'; block: Ranges; data: TypedArray; from: number }
  | { op: 'free'; from: number };

/** The id of a chunk's actor: one subject token, `<array>-<index>` (events under `colony.<c>.evt.chunk.<array>-<index>`). */
export function chunkActorId(array: string, index: number): string {
  return `${array}-${index}`;
}

/** One chunk held by this process. */
export interface Chunk {
  array: string;
  index: number;
  /** The chunk's block in the global index space. */
  I: Ranges;
  type: string;
  /** The elements, row-major over `I`. Tasks on the owner may change them in place. */
  data: TypedArray;
  counts: ChunkCounts;
  /** Counts changed since the last `chunk.reads.counted`. */
  dirty: boolean;
  actor: HostedActor;
  sub: Subscription | null;
}

const HOSTNAME = hostname();
const emptyCounts = (): ChunkCounts => ({ reads: 0, readElements: 0, writes: 0, readers: {} });

export class ChunkStore {
  private current: ProcessNode | null = null;
  private readonly arrays = new Map<string, Map<number, Chunk>>();
  private timer: NodeJS.Timeout | null = null;

  /** The process node this store serves through; null until bound. */
  get node(): ProcessNode | null {
    return this.current;
  }

  /** Binds the store to this process's node. Rebinding to another node drops the old chunks. */
  bind(node: ProcessNode): void {
    if (this.current === node) return;
    if (this.current) this.clear();
    this.current = node;
  }

  /** The bound node, or a clear error. */
  need(): ProcessNode {
    if (!this.current) throw new ColonyError('distributed arrays are not available in this process: it is not part of a running cluster');
    return this.current;
  }

  get(array: string, index: number): Chunk | undefined {
    return this.arrays.get(array)?.get(index);
  }

  /** Chunks of `array` held here, by index. */
  chunksOf(array: string): Map<number, Chunk> | undefined {
    return this.arrays.get(array);
  }

  /** Number of chunks held here. */
  get size(): number {
    let n = 0;
    for (const m of this.arrays.values()) n += m.size;
    return n;
  }

  /**
   * Takes ownership of a chunk: starts its actor (`chunk.placed`) and serves its subject.
   * Resolves once the placement is stored.
   */
  async place(array: string, index: number, I: Ranges, data: TypedArray, type: string): Promise<Chunk> {
    const node = this.need();
    let chunks = this.arrays.get(array);
    if (!chunks) this.arrays.set(array, (chunks = new Map()));
    if (chunks.has(index)) throw new InvalidArgumentError('index', `chunk ${index} of array ${array} is already placed on pid ${node.pid}`);
    const actor = node.host.create('chunk', chunkActorId(array, index));
    actor.send(chunkEvents.placed(Date.now(), { array, index, pid: node.pid, host: HOSTNAME, I, type, bytes: data.byteLength }));
    const chunk: Chunk = { array, index, I, type, data, counts: emptyCounts(), dirty: false, actor, sub: null };
    chunks.set(index, chunk);
    chunk.sub = node.nc.subscribe(node.s.chunk(array, index), { callback: (_e, m) => void this.onRequest(chunk, m) });
    return chunk;
  }

  /** Drops a chunk: stops serving it and writes `chunk.freed` with its counts. */
  async free(array: string, index: number, by: number): Promise<ChunkCounts | null> {
    const chunks = this.arrays.get(array);
    const chunk = chunks?.get(index);
    if (!chunk) return null;
    chunks!.delete(index);
    if (chunks!.size === 0) this.arrays.delete(array);
    chunk.sub?.unsubscribe();
    chunk.sub = null;
    chunk.data = new (chunk.data.constructor as new (n: number) => TypedArray)(0);
    chunk.actor.send(chunkEvents.freed(Date.now(), by, chunk.counts));
    return chunk.counts;
  }

  /** Forgets every chunk without events (the node went away). */
  clear(): void {
    for (const chunks of this.arrays.values()) for (const c of chunks.values()) c.sub?.unsubscribe();
    this.arrays.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Copies the given blocks out of a chunk, one after another, into one array. */
  static extract(chunk: Chunk, blocks: Ranges[]): TypedArray {
    if (blocks.length === 1 && sameRanges(blocks[0]!, chunk.I)) return chunk.data;
    let total = 0;
    for (const b of blocks) total += lengthOf(b);
    const Ctor = chunk.data.constructor as new (n: number) => TypedArray;
    const out = new Ctor(total);
    let off = 0;
    for (const b of blocks) {
      const n = lengthOf(b);
      copyBlock(chunk.data, chunk.I, out.subarray(off, off + n) as TypedArray, b, b);
      off += n;
    }
    return out;
  }

  /**
   * Writes each block at its position in the reader's shared-memory file, which it has mapped:
   * the reader's result is then complete with no copy on its side. Null when the file cannot be
   * opened from here (another mount namespace) or is not one of those files: answer with the data.
   */
  static writeInto(chunk: Chunk, blocks: Ranges[], into: ReadInto): number | null {
    if (!isShmTarget(into.file) || !Array.isArray(into.at) || into.at.length !== blocks.length) return null;
    let fd: number;
    try {
      fd = openSync(into.file, 'r+');
    } catch {
      return null;
    }
    let total = 0;
    try {
      blocks.forEach((b, i) => {
        const data = ChunkStore.extract(chunk, [b]);
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, into.at[i]! + done);
        total += bytes.length;
      });
    } finally {
      closeSync(fd);
    }
    return total;
  }

  /** Writes `data` to a new file in /dev/shm for a reader on this host. */
  private handOver(data: TypedArray): DirectRead {
    const file = `/dev/shm/colony-${process.pid}-read${++handOverCount}`;
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } finally {
      closeSync(fd);
    }
    handedOver.add(file);
    setTimeout(() => {
      handedOver.delete(file);
      try { unlinkSync(file); } catch { /* taken */ }
    }, DIRECT_TTL_MS).unref();
    return { file, bytes: data.byteLength };
  }

  private count(chunk: Chunk, from: number, elements: number, write: boolean): void {
    const c = chunk.counts;
    if (write) c.writes++;
    else {
      c.reads++;
      c.readElements += elements;
      c.readers[from] = (c.readers[from] ?? 0) + 1;
    }
    chunk.dirty = true;
    this.timer ??= setInterval(() => this.flushCounts(), COUNT_EVERY_MS);
    this.timer.unref();
  }

  /** Writes `chunk.reads.counted` for every chunk read since the last time. */
  flushCounts(): void {
    let live = false;
    for (const chunks of this.arrays.values()) {
      for (const c of chunks.values()) {
        live = true;
        if (!c.dirty) continue;
        c.dirty = false;
        try {
          c.actor.send(chunkEvents.readsCounted(Date.now(), { ...c.counts, readers: { ...c.counts.readers } }));
        } catch {
          /* the actor failed to persist; its failure is reported by the journal */
        }
      }
    }
    if (!live && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private async onRequest(chunk: Chunk, msg: Msg): Promise<void> {
    const node = this.current;
    if (!node) return;
    let reply: Reply;
    try {
      const req = await node.unpack<ChunkRequest>(msg.data);
      switch (req.op) {
        case 'read': {
          for (const b of req.blocks) checkInside(chunk, b);
          const written = req.into && req.host === HOST_KEY ? ChunkStore.writeInto(chunk, req.blocks, req.into) : null;
          if (written !== null) {
            this.count(chunk, req.from, written / chunk.data.BYTES_PER_ELEMENT, false);
            reply = { ok: { written } satisfies WrittenRead };
            break;
          }
          const data = ChunkStore.extract(chunk, req.blocks);
          this.count(chunk, req.from, data.length, false);
          reply = { ok: req.host === HOST_KEY && data.byteLength >= DIRECT_READ_BYTES ? this.handOver(data) : data };
          break;
        }
        case 'write': {
          checkInside(chunk, req.block);
          if (req.data.length !== lengthOf(req.block)) {
            throw new InvalidArgumentError('values', `expected ${lengthOf(req.block)} elements for block ${JSON.stringify(req.block)}, got ${req.data.length}`);
          }
          copyBlock(req.data, req.block, chunk.data, chunk.I, req.block);
          this.count(chunk, req.from, req.data.length, true);
          reply = { done: true };
          break;
        }
        case 'free':
          reply = { ok: await this.free(chunk.array, chunk.index, req.from) };
          break;
        default:
          throw new InvalidArgumentError('op', `unknown chunk operation '${(req as { op: string }).op}'`);
      }
    } catch (e) {
      reply = { err: toErrorData(e, node.pid) };
    }
    if (!msg.reply) return;
    try {
      msg.respond(node.pack(reply));
    } catch (e) {
      msg.respond(node.pack({ err: toErrorData(e, node.pid) }));
    }
  }
}

const handedOver = new Set<string>();
let handOverCount = 0;
process.once('exit', () => {
  for (const f of handedOver) try { unlinkSync(f); } catch { /* taken */ }
});

function sameRanges(a: Ranges, b: Ranges): boolean {
  return a.length === b.length && a.every(([s, e], i) => s === b[i]![0] && e === b[i]![1]);
}

function checkInside(chunk: Chunk, b: Ranges): void {
  const ok = b.length === chunk.I.length && b.every(([s, e], i) => s >= chunk.I[i]![0] && e <= chunk.I[i]![1] && s <= e);
  if (!ok) {
    throw new InvalidArgumentError('ranges', `block ${JSON.stringify(b)} is not inside chunk ${chunk.index} of ${chunk.array} (${JSON.stringify(chunk.I)}, shape ${shapeOf(chunk.I).join('x')})`);
  }
}

/** This process's chunk store. */
export const chunkStore = new ChunkStore();

/**
 * Makes this process able to own array chunks and shared arrays: binds the store to its node and
 * loads the modules whose tasks build and serve them. Worker main calls it once at start.
 */
export async function attachArrays(node: ProcessNode): Promise<void> {
  chunkStore.bind(node);
  await import('./darray.ts');
  await import('./shared-array.ts');
}
