/**
 * Decoding envelopes read back from the stream, for replay.
 *
 * `codec.decode` (msgpackr with records) rebuilds each message's record definitions, a reader
 * closure per record and per message included: ~3 us an envelope, 40% of a stream read. Envelopes
 * use a small part of msgpack: records, short ASCII strings, numbers, null, booleans and arrays.
 * This reads exactly that part, and hands every message that holds anything else (a Map, a typed
 * array, a Date, a bigint, a RemoteRef, a non-ASCII string, a float32...) to `codec.decode`, so
 * the result is always what `codec.decode` gives. test/event-decode.test.ts checks both agree.
 */
import type { Envelope } from '../../actors/index.ts';
import { decode } from '../transport/codec.ts';

/** Thrown (never escapes) when a message leaves the part this decoder reads. */
const OTHER = new Error('not in the plain subset');

let src: Uint8Array = new Uint8Array(0);
let pos = 0;
/** Big-endian float64s go through these rather than a DataView per message. */
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** A record's keys and a reader that builds the object with them as one literal. */
interface Shape { keys: string[]; build: (r: () => unknown) => Record<string, unknown> }
/** Record definitions by slot (0x40..0x7f), for the message being read. */
const slots: (Shape | undefined)[] = new Array(64);
let used = 0;
/**
 * Definitions seen before, by slot: a message's definition bytes are compared with these, so
 * the key strings of the envelope record are built once rather than per message.
 */
const seen: ({ bytes: Uint8Array; shape: Shape } | undefined)[] = new Array(64);

/** Decodes one envelope as `codec.decode` would. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  try {
    src = bytes;
    pos = 0;
    const v = read();
    if (pos !== bytes.length) throw OTHER;
    return v as Envelope;
  } catch {
    return decode<Envelope>(bytes);
  } finally {
    for (let i = 0; i < used; i++) slots[i] = undefined;
    used = 0;
  }
}

function read(): unknown {
  const t = src[pos++]!;
  if (t < 0x40) return t;
  if (t < 0x80) {
    // A record whose definition came earlier in this message (msgpackr packs 0x40..0x7f ints as uint8).
    const shape = slots[t & 0x3f];
    if (!shape) throw OTHER;
    return shape.build(read);
  }
  if (t >= 0xe0) return t - 0x100;
  if (t >= 0xa0 && t < 0xc0) return ascii(t - 0xa0);
  if (t >= 0x90 && t < 0xa0) return array(t - 0x90);
  let v: number;
  switch (t) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xcb: return float64();
    case 0xcc: return byte();
    case 0xcd: return uint(2);
    case 0xce: return uint(4);
    case 0xd0: v = byte(); return v > 0x7f ? v - 0x100 : v;
    case 0xd1: v = uint(2); return v > 0x7fff ? v - 0x10000 : v;
    case 0xd2: return uint(4) | 0;
    case 0xd9: return ascii(byte());
    case 0xda: return ascii(uint(2));
    case 0xdc: return array(uint(2));
    case 0xd4:
      // fixext 1 with type 'r': a record definition (its keys) followed by the record's values.
      if (src[pos] !== 0x72) throw OTHER;
      return define(src[pos + 1]! & 0x3f).build(read);
    default:
      throw OTHER;
  }
}

function define(slot: number): Shape {
  pos += 2;
  const start = pos;
  const prev = seen[slot];
  let shape: Shape;
  if (prev && sameBytes(prev.bytes, start)) {
    shape = prev.shape;
    pos += prev.bytes.length;
  } else {
    const k = read();
    if (!Array.isArray(k) || !k.every((x) => typeof x === 'string' && x !== '__proto__')) throw OTHER;
    shape = { keys: k as string[], build: builder(k as string[]) };
    seen[slot] = { bytes: src.slice(start, pos), shape };
  }
  slots[slot] = shape;
  if (slot + 1 > used) used = slot + 1;
  return shape;
}

/** `r => ({ v: r(), kind: r(), ... })`: values read in key order, as msgpackr's own readers do. */
function builder(keys: string[]): Shape['build'] {
  const body = keys.map((k) => `${JSON.stringify(k)}: r()`).join(', ');
  return new Function('r', `return { ${body} };`) as Shape['build'];
}

function sameBytes(b: Uint8Array, at: number): boolean {
  if (at + b.length > src.length) return false;
  for (let i = 0; i < b.length; i++) if (src[at + i] !== b[i]) return false;
  return true;
}

function byte(): number {
  if (pos >= src.length) throw OTHER;
  return src[pos++]!;
}

/** An unsigned big-endian integer of 2 or 4 bytes. */
function uint(n: 2 | 4): number {
  if (pos + n > src.length) throw OTHER;
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + src[pos++]!;
  return v;
}

function float64(): number {
  if (pos + 8 > src.length) throw OTHER;
  for (let i = 0; i < 8; i++) f64Bytes[LITTLE ? 7 - i : i] = src[pos++]!;
  return f64[0]!;
}

function array(n: number): unknown[] {
  const a = new Array<unknown>(n);
  for (let i = 0; i < n; i++) a[i] = read();
  return a;
}

function ascii(n: number): string {
  const end = pos + n;
  if (end > src.length) throw OTHER;
  let s = '';
  for (let i = pos; i < end; i++) {
    const c = src[i]!;
    if (c > 0x7f) throw OTHER;
    s += String.fromCharCode(c);
  }
  pos = end;
  return s;
}
