/**
 * Payloads above the server's max_payload: a small `{ $blob }` marker travels in the message and
 * the receiver takes the bytes.
 *
 * - Same host: the holder writes the frame to a file in /dev/shm once; the receiver reads it and
 *   removes it (Ray's object store does the same for same-node objects).
 * - Another host: the receiver pulls chunks from the holder's `colony.<c>.ref.<pid>` subject, a
 *   window at a time, so neither side floods the server (core NATS has no flow control).
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, unlinkSync, writevSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Msg } from '@nats-io/transport-node';
import { encode } from './codec.ts';
import { RemoteException } from './errors.ts';
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
const shmUsable = (() => {
  try {
    return existsSync(SHM_DIR) && process.env.COLONY_NO_SHM !== '1';
  } catch {
    return false;
  }
})();

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
    let path: string | null = null;
    let bytes: Uint8Array | null = null;
    if (shmUsable) {
      try {
        path = `${SHM_DIR}/colony-${process.pid}-${id}`;
        const fd = openSync(path, 'wx', 0o600);
        try {
          writevSync(fd, frame.pieces);
        } finally {
          closeSync(fd);
        }
        liveFiles.add(path);
      } catch {
        path = null;
      }
    }
    if (!path) bytes = Buffer.concat(frame.pieces, frame.size);
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
      readSync(fd, out, 0, out.length, start);
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
 * Takes a blob: from shared memory when it is on this host, else in chunks over NATS. Tells the
 * holder to release it either way. The result starts 8-byte aligned.
 */
export async function takeBlob(req: Requester, refSubject: string, m: BlobMarker): Promise<Uint8Array> {
  try {
    if (m.shm && m.host === HOST_KEY) {
      try {
        const buf = readFileSync(m.shm);
        if (buf.length === m.size) return buf;
      } catch {
        /* not visible from here: pull it instead */
      }
    }
    return await pullChunks(req, refSubject, m);
  } finally {
    req.publishOnly(refSubject, encode({ op: 'blob-done', id: m.id }));
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
