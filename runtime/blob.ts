/**
 * Payloads above the server's max_payload travel in chunks, pulled by the receiver.
 *
 * The sender keeps the encoded bytes and puts a small `{ $blob }` marker in the message. The
 * receiver requests the chunks from the holder's `colony.<c>.ref.<pid>` subject, a window at a
 * time, so neither side floods the server (core NATS has no flow control).
 */
import type { Msg } from '@nats-io/transport-node';
import { encode } from './codec.ts';
import type { Requester } from './requester.ts';
import { RemoteException } from './errors.ts';

export interface BlobMarker {
  holder: number;
  id: string;
  size: number;
  chunk: number;
}

/** How long an unclaimed blob is kept before the holder drops it. */
export const BLOB_TTL_MS = 10 * 60_000;
/** Chunk requests in flight at once. */
export const BLOB_WINDOW = 6;

/** The sending side: keeps blobs and serves their chunks. */
export class BlobStore {
  private readonly blobs = new Map<string, { bytes: Uint8Array; chunk: number; timer: NodeJS.Timeout }>();
  private next = 1;

  constructor(private readonly pid: number, private readonly nonce: string) {}

  offer(bytes: Uint8Array, chunk: number): BlobMarker {
    const id = `${this.nonce}b${this.next++}`;
    const timer = setTimeout(() => this.blobs.delete(id), BLOB_TTL_MS);
    timer.unref();
    this.blobs.set(id, { bytes, chunk, timer });
    return { holder: this.pid, id, size: bytes.length, chunk };
  }

  /** Answers a chunk request; the reply payload is the raw chunk. The last chunk releases the blob. */
  serve(msg: Msg, id: string, index: number): void {
    const b = this.blobs.get(id);
    if (!b) {
      msg.respond(encode({ error: { name: 'Error', message: `blob ${id} is gone (expired or already taken)` } }), { headers: undefined });
      return;
    }
    const start = index * b.chunk;
    const end = Math.min(b.bytes.length, start + b.chunk);
    msg.respond(b.bytes.subarray(start, end));
  }

  release(id: string): void {
    const b = this.blobs.get(id);
    if (!b) return;
    clearTimeout(b.timer);
    this.blobs.delete(id);
  }

  /** Blobs waiting to be pulled. */
  get size(): number {
    return this.blobs.size;
  }
}

/**
 * Pulls a blob from its holder, keeping `BLOB_WINDOW` chunk requests in flight, then tells the
 * holder to release it.
 */
export async function pullBlob(req: Requester, refSubject: string, m: BlobMarker): Promise<Uint8Array> {
  const out = Buffer.allocUnsafe(m.size);
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
  try {
    await Promise.all(Array.from({ length: Math.min(BLOB_WINDOW, count) }, worker));
  } finally {
    req.publishOnly(refSubject, encode({ op: 'blob-done', id: m.id }));
  }
  return out;
}
