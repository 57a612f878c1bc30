/**
 * Payloads above the server's max_payload: a small `{ $blob }` marker travels in the message and
 * the receiver takes the bytes.
 *
 * - Same host: the holder writes the frame to a file in /dev/shm once; the receiver maps that file
 *   (no copy), removes its name at once, and so owns the pages: nobody else can open them, and
 *   they are unmapped when the received value is garbage (Ray's object store hands out same-node
 *   objects the same way). Without the native mapper, or with /dev/shm more than half full, the
 *   receiver reads the file instead.
 * - Another host: the receiver pulls chunks from the holder's `colony.<c>.ref.<pid>` subject, a
 *   window at a time, so neither side floods the server (core NATS has no flow control).
 *
 * The file is `[u64 frame size][frame]`: shm-typed-array's layout, which maps the bytes after the
 * size, so the frame starts 8-byte aligned.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statfsSync, unlinkSync, writevSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type { Msg } from '@nats-io/transport-node';
import { encode } from './codec.ts';
import { InvalidArgumentError, RemoteException } from './errors.ts';
import type { Frame } from './frame.ts';
import type { Requester } from './requester.ts';

export interface BlobMarker {
  holder: number;
  id: string;
  size: number;
  chunk: number;
  /** A file in shared memory with the bytes, readable on host `host`. */
  shm?: string;
  host?: string;
}

/** How long an unclaimed blob is kept before the holder drops it. */
export const BLOB_TTL_MS = 10 * 60_000;
/** Chunk requests in flight at once. */
export const BLOB_WINDOW = 6;
const SHM_DIR = '/dev/shm';
/** The largest blob a marker may announce (Node's largest Buffer). */
const MAX_BLOB_BYTES = 2 ** 32;
/** The size header before the frame in a shm file. */
const SHM_HEADER = 8;

/** This machine: host name plus boot id, so two containers of one host can still tell. */
export const HOST_KEY = (() => {
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    /* not Linux */
  }
  return `${hostname()}/${boot}`;
})();
const shmDirExists = (() => {
  try {
    return existsSync(SHM_DIR);
  } catch {
    return false;
  }
})();
/** Read per blob, so a test can turn it off in a running process. */
const shmUsable = () => shmDirExists && process.env.COLONY_NO_SHM !== '1';

/** The part of shm-typed-array used here: maps a POSIX shm object as `[size][bytes]`. */
interface ShmMapper {
  getPosix(name: string, typeKey: 'Uint8Array'): Uint8Array | null;
  createPosix(name: string, count: number, typeKey: 'Uint8Array', perm?: string): Uint8Array | null;
  detachPosix(name: string, forceDestroy?: boolean): number;
}
let mapper: ShmMapper | null | undefined;
function shmMapper(): ShmMapper | null {
  if (mapper === undefined) {
    try {
      mapper = createRequire(import.meta.url)('shm-typed-array') as ShmMapper;
    } catch {
      mapper = null; // not built here: receivers read the file instead
    }
  }
  return mapper;
}
// A typed (not Buffer) view from shm-typed-array frees nothing by itself; its mapping goes once
// nothing references the ArrayBuffer. Unmapping by name also clears the package's own record,
// which it would otherwise unmap a second time at exit.
const unmapper = new FinalizationRegistry<string>((name) => {
  try {
    shmMapper()?.detachPosix(name, false);
  } catch {
    /* unmapped already */
  }
});

/** Whether a received blob (or `bytes` more) may stay in /dev/shm: only while it is less than half full. */
function roomToMap(bytes = 0): boolean {
  try {
    const s = statfsSync(SHM_DIR);
    return (s.bavail - bytes / s.bsize) * 2 >= s.blocks;
  } catch {
    return false;
  }
}

/** A shared-memory buffer that processes of this host write into by file, at `dataAt + offset`. */
export interface ShmTarget {
  /** The mapped bytes: what the writers write, seen here without a copy. */
  view: Uint8Array;
  /** Its file in /dev/shm; a writer checks it with {@link isShmTarget}. */
  path: string;
  /** Where the bytes start in the file (after shm-typed-array's size header). */
  dataAt: number;
  /** Removes the file once the writers are done; the mapping stays until `view` is collected. */
  unlink(): void;
}

let targets = 0;
const TARGET_PREFIX = `${SHM_DIR}/colony-`;

/**
 * A new zero-filled buffer of `bytes` bytes in shared memory, mapped here, for results that other
 * processes of this host write straight into (a big `DArray.get`). Null when shared memory is not
 * usable here or /dev/shm would be over half full.
 */
export function shmTarget(bytes: number): ShmTarget | null {
  const shm = shmUsable() && roomToMap(bytes) ? shmMapper() : null;
  if (!shm) return null;
  const name = `/colony-${process.pid}-into${++targets}`;
  let view: Uint8Array | null = null;
  try {
    view = shm.createPosix(name, bytes, 'Uint8Array', '600');
  } catch {
    return null; // too big for the package, or no room
  }
  if (!view) return null;
  const path = `${SHM_DIR}${name}`;
  liveFiles.add(path);
  unmapper.register(view.buffer, name);
  return {
    view,
    path,
    dataAt: SHM_HEADER,
    unlink: () => {
      liveFiles.delete(path);
      try { unlinkSync(path); } catch { /* gone */ }
    },
  };
}

/** Whether `path` names a target of {@link shmTarget}: a writer writes nowhere else on request. */
export function isShmTarget(path: unknown): path is string {
  return typeof path === 'string' && path.startsWith(TARGET_PREFIX) && /^colony-\d+-into\d+$/.test(path.slice(SHM_DIR.length + 1));
}

interface Held {
  bytes: Uint8Array | null;
  path: string | null;
  chunk: number;
  size: number;
  timer: NodeJS.Timeout;
}

const liveFiles = new Set<string>();
process.once('exit', () => {
  for (const f of liveFiles) try { unlinkSync(f); } catch { /* gone */ }
});

/** The sending side: keeps blobs and serves their chunks. */
export class BlobStore {
  private readonly blobs = new Map<string, Held>();
  private next = 1;

  constructor(private readonly pid: number, private readonly nonce: string) {}

  offer(frame: Frame, chunk: number): BlobMarker {
    const id = `${this.nonce}b${this.next++}`;
    const timer = setTimeout(() => this.release(id), BLOB_TTL_MS);
    timer.unref();
    const path = shmUsable() ? writeShm(`${SHM_DIR}/colony-${process.pid}-${id}`, frame) : null;
    const bytes = path ? null : Buffer.concat(frame.pieces, frame.size);
    this.blobs.set(id, { bytes, path, chunk, size: frame.size, timer });
    const marker: BlobMarker = { holder: this.pid, id, size: frame.size, chunk };
    if (path) Object.assign(marker, { shm: path, host: HOST_KEY });
    return marker;
  }

  /** Answers a chunk request; the reply payload is the raw chunk. */
  serve(msg: Msg, id: string, index: number): void {
    const b = this.blobs.get(id);
    const start = index * (b?.chunk ?? 0);
    if (!b || (b.path && !existsSync(b.path))) {
      msg.respond(encode({ err: { name: 'Error', message: `blob ${id} is gone (expired or already taken)` } }));
      return;
    }
    const end = Math.min(b.size, start + b.chunk);
    if (b.bytes) {
      msg.respond(b.bytes.subarray(start, end));
      return;
    }
    const out = Buffer.allocUnsafe(end - start);
    const fd = openSync(b.path!, 'r');
    try {
      readFully(fd, out, SHM_HEADER + start);
    } finally {
      closeSync(fd);
    }
    msg.respond(out);
  }

  release(id: string): void {
    const b = this.blobs.get(id);
    if (!b) return;
    clearTimeout(b.timer);
    this.blobs.delete(id);
    if (b.path) {
      liveFiles.delete(b.path);
      try { unlinkSync(b.path); } catch { /* the receiver took it */ }
    }
  }

  /** Blobs waiting to be taken. */
  get size(): number {
    return this.blobs.size;
  }
}

/**
 * Writes `[size][frame]` to a new file with one system call; null (and no file) if it fails,
 * e.g. when /dev/shm is full.
 */
function writeShm(path: string, frame: Frame): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch {
    return null;
  }
  liveFiles.add(path);
  let ok = false;
  try {
    const head = new Uint8Array(SHM_HEADER);
    new DataView(head.buffer).setBigUint64(0, BigInt(frame.size), true);
    ok = writevSync(fd, [head, ...frame.pieces]) === SHM_HEADER + frame.size;
  } catch {
    /* ENOSPC and the like: the caller keeps the bytes in memory instead */
  } finally {
    closeSync(fd);
  }
  if (ok) return path;
  liveFiles.delete(path);
  try { unlinkSync(path); } catch { /* gone */ }
  return null;
}

/** Reads `out.length` bytes at `position`, however many reads that takes. */
function readFully(fd: number, out: Uint8Array, position: number): void {
  for (let done = 0; done < out.length; ) {
    const n = readSync(fd, out, done, out.length - done, position + done);
    if (n === 0) throw new Error(`short read: ${done} of ${out.length} bytes`);
    done += n;
  }
}

/**
 * The frame of a same-host blob, mapped (no copy) or read; null if the file is not visible from
 * here. A mapped file's name is removed at once: its pages are now the receiver's alone.
 */
function takeShm(path: string, size: number): Uint8Array | null {
  const shm = roomToMap() ? shmMapper() : null;
  if (shm) {
    const name = path.slice(SHM_DIR.length);
    let view: Uint8Array | null = null;
    try {
      view = shm.getPosix(name, 'Uint8Array');
    } catch {
      /* no mapping (too many maps, no permission): read it below */
    }
    if (view) {
      try { unlinkSync(path); } catch { /* its holder released it: the mapping still holds the pages */ }
      if (view.length === size) {
        unmapper.register(view.buffer, name);
        return view;
      }
      shm.detachPosix(name, false);
      return null;
    }
  }
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    // allocUnsafeSlow: its own ArrayBuffer (so 8-byte aligned), not zero-filled (every byte is read over).
    const out = Buffer.allocUnsafeSlow(size);
    readFully(fd, out, SHM_HEADER);
    return out;
  } catch {
    return null;
  } finally {
    closeSync(fd); // its holder removes the file (freeing its pages takes time, better spent there)
  }
}

/**
 * Takes a blob: from shared memory when it is on this host, else in chunks over NATS. Tells the
 * holder to release it either way. The result starts 8-byte aligned.
 */
export async function takeBlob(req: Requester, refSubject: string, m: BlobMarker): Promise<Uint8Array> {
  checkMarker(m);
  try {
    if (m.shm && m.host === HOST_KEY) {
      const bytes = takeShm(m.shm, m.size);
      if (bytes) return bytes;
      // not visible from here (another mount namespace): pull it instead
    }
    return await pullChunks(req, refSubject, m);
  } finally {
    req.publishOnly(refSubject, encode({ op: 'blob-done', id: m.id }));
  }
}

/**
 * A marker off the wire names a blob this runtime made: a holder pid, an id, whole sizes, and a
 * shared-memory file of ours. Anything else is refused before a byte is allocated or a file touched.
 */
function checkMarker(m: BlobMarker): void {
  const bad = (field: string, why: string): never => {
    throw new InvalidArgumentError(`$blob.${field}`, `${why}: not a blob marker made by colony`);
  };
  if (!m || typeof m !== 'object') bad('marker', 'expected an object');
  if (!Number.isInteger(m.holder) || m.holder < 1) bad('holder', `expected a pid, got ${String(m.holder)}`);
  if (typeof m.id !== 'string' || !/^[A-Za-z0-9]+$/.test(m.id)) bad('id', `expected a blob id, got ${String(m.id)}`);
  if (!Number.isSafeInteger(m.size) || m.size < 0 || m.size > MAX_BLOB_BYTES) bad('size', `expected 0..${MAX_BLOB_BYTES} bytes, got ${String(m.size)}`);
  if (!Number.isSafeInteger(m.chunk) || m.chunk < 1) bad('chunk', `expected a chunk size >= 1, got ${String(m.chunk)}`);
  if (m.shm !== undefined && (typeof m.shm !== 'string' || !m.shm.startsWith(`${SHM_DIR}/colony-`) || m.shm.slice(SHM_DIR.length + 1).includes('/'))) {
    bad('shm', `expected a file ${SHM_DIR}/colony-*, got ${String(m.shm)}`);
  }
}

async function pullChunks(req: Requester, refSubject: string, m: BlobMarker): Promise<Uint8Array> {
  const out = Buffer.allocUnsafeSlow(m.size);
  const count = Math.ceil(m.size / m.chunk);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const reply = await req.request(m.holder, refSubject, encode({ op: 'blob', id: m.id, i }));
      const expected = Math.min(m.size, (i + 1) * m.chunk) - i * m.chunk;
      if (reply.data.length !== expected) {
        throw new RemoteException(m.holder, 'Error', `chunk ${i} of blob ${m.id} has ${reply.data.length} bytes, expected ${expected}`);
      }
      out.set(reply.data, i * m.chunk);
    }
  };
  await Promise.all(Array.from({ length: Math.min(BLOB_WINDOW, count) }, worker));
  return out;
}
