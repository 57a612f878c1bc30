/**
 * The layout of a large message: big typed arrays are lifted out of the msgpack body and laid
 * after it, 8-byte aligned, so they are copied once on the way out and viewed in place (no copy)
 * on the way in.
 *
 *   [u32 body length][body: msgpack with { $ta: i } placeholders][pad][part 0][pad][part 1]...
 */
import { decode, encode } from './codec.ts';
import type { RefBinder } from './codec.ts';

/** Typed arrays at least this big travel outside the msgpack body. */
export const LIFT_BYTES = 256 * 1024;
const MAX_DEPTH = 4;

type View = ArrayBufferView & { length?: number };
const CTORS: Record<string, new (b: ArrayBuffer, o: number, l: number) => ArrayBufferView> = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
};

export interface Frame {
  /** The bytes in order; their total is `size`. */
  pieces: Uint8Array[];
  size: number;
}

const align = (n: number) => (n + 7) & ~7;

/** User objects with one of these keys are escaped, so they never pass for our placeholders. */
const RESERVED = ['$ta', '$esc', '$blob'];

function lift(value: unknown, parts: View[], depth: number): unknown {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    if (value.byteLength >= LIFT_BYTES && name in CTORS && !Buffer.isBuffer(value)) {
      parts.push(value);
      return { $ta: parts.length - 1, t: name };
    }
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => lift(v, parts, depth + 1));
  if (Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    let reserved = false;
    for (const [k, v] of Object.entries(value)) {
      out[k] = lift(v, parts, depth + 1);
      if (RESERVED.includes(k)) reserved = true;
    }
    return reserved ? { $esc: out } : out;
  }
  return value;
}

/**
 * Whether {@link lift} would change anything in `value`: a big typed array or a reserved key
 * within its reach. A walk that allocates nothing, so most messages skip lift's copy.
 */
function needsLift(value: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return false;
  if (ArrayBuffer.isView(value)) return value.byteLength >= LIFT_BYTES;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (needsLift(value[i], depth + 1)) return true;
    return false;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  const o = value as Record<string, unknown>;
  for (const k in o) {
    if (RESERVED.includes(k) || needsLift(o[k], depth + 1)) return true;
  }
  return false;
}

/**
 * Encodes `obj`, lifting big typed arrays out. Small messages come back as one msgpack body with
 * no parts; the caller sends those inline.
 */
export function encodeParts(obj: unknown): { body: Uint8Array; parts: ArrayBufferView[] } {
  const parts: View[] = [];
  const body = encode(needsLift(obj, 0) ? lift(obj, parts, 0) : obj);
  return { body, parts };
}

/** Lays `obj` out as a frame. */
export function encodeFrame(obj: unknown): Frame {
  const { body, parts } = encodeParts(obj);
  return frameOf(body, parts);
}

/** The frame of an encoded body and its lifted parts. */
export function frameOf(body: Uint8Array, parts: ArrayBufferView[]): Frame {
  const pieces: Uint8Array[] = [];
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, body.length, true);
  pieces.push(head, body);
  let size = 4 + body.length;
  for (const p of parts) {
    const padded = align(size);
    if (padded > size) pieces.push(new Uint8Array(padded - size));
    const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
    // Each part is preceded by its byte length so the reader can find it.
    size = padded;
    const len = new Uint8Array(8);
    new DataView(len.buffer).setFloat64(0, p.byteLength, true);
    pieces.push(len, bytes);
    size += 8 + p.byteLength;
  }
  return { pieces, size };
}

function isEsc(v: object): v is { $esc: Record<string, unknown> } {
  return '$esc' in v && Object.keys(v).length === 1;
}

function place(value: unknown, parts: ArrayBufferView[], depth: number): unknown {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  const v = value as { $ta?: number };
  if (isEsc(value)) {
    const o = value.$esc;
    for (const k of Object.keys(o)) o[k] = place(o[k], parts, depth + 1);
    return o;
  }
  if (typeof v.$ta === 'number' && Object.keys(v).length === 2) return parts[v.$ta];
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = place(value[i], parts, depth + 1);
    return value;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = place(o[k], parts, depth + 1);
  }
  return value;
}

/** Undoes the escaping of an inline message (one sent with no lifted parts). */
export function unescapeInline<T>(obj: T): T {
  return place(obj, [], 0) as T;
}

/** Reads a frame; the lifted arrays are views of `buf` (which must start 8-byte aligned). */
export function decodeFrame<T>(buf: Uint8Array, refs?: RefBinder): T {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const bodyLen = dv.getUint32(0, true);
  const obj = decode<unknown>(buf.subarray(4, 4 + bodyLen), refs);
  const parts: ArrayBufferView[] = [];
  let off = 4 + bodyLen;
  const types: string[] = [];
  collectTypes(obj, types, 0);
  for (const t of types) {
    off = align(off);
    const len = dv.getFloat64(off, true);
    off += 8;
    const C = CTORS[t]!;
    const el = (C as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    if ((buf.byteOffset + off) % el === 0) {
      parts.push(new C(buf.buffer as ArrayBuffer, buf.byteOffset + off, len / el));
    } else {
      parts.push(new C(buf.slice(off, off + len).buffer as ArrayBuffer, 0, len / el));
    }
    off += len;
  }
  return place(obj, parts, 0) as T;
}

/** The types of the placeholders, in index order. */
function collectTypes(value: unknown, out: string[], depth: number): void {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return;
  if (isEsc(value)) {
    for (const x of Object.values(value.$esc)) collectTypes(x, out, depth + 1);
    return;
  }
  const v = value as { $ta?: number; t?: string };
  if (typeof v.$ta === 'number' && typeof v.t === 'string' && Object.keys(v).length === 2) {
    out[v.$ta] = v.t;
    return;
  }
  if (Array.isArray(value)) for (const x of value) collectTypes(x, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const x of Object.values(value)) collectTypes(x, out, depth + 1);
}
