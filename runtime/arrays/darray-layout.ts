/**
 * Index math of distributed and shared arrays. Pure: no I/O, no cluster.
 *
 * Arrays are row-major (C order): the last index varies fastest. An index range is one
 * `[start, end)` pair per dimension, 0-based. A distribution `dist` says how many blocks each
 * dimension is cut into; the chunk grid is numbered row-major too, and chunk `k` lives on
 * `procs[k]`.
 */
import { InvalidArgumentError } from '../transport/errors.ts';

/** `[start, end)`, 0-based. */
export type Range = [start: number, end: number];
/** One range per dimension. */
export type Ranges = Range[];

export type TypedArray =
  | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** A typed array constructor, e.g. `Float64Array`. */
export interface TypedArrayConstructor<T extends TypedArray = TypedArray> {
  new (length: number): T;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): T;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}

/** The element types arrays can have, by constructor name. */
export const TYPED_ARRAYS: Readonly<Record<string, TypedArrayConstructor>> = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
} as unknown as Record<string, TypedArrayConstructor>;

/** Whether elements of this type are bigints. */
export function isBigIntType(name: string): boolean {
  return name === 'BigInt64Array' || name === 'BigUint64Array';
}

export function isFloatType(name: string): boolean {
  return name === 'Float32Array' || name === 'Float64Array';
}

/** The constructor of a type given as a constructor or its name; throws a clear error otherwise. */
export function typeCtor(type: unknown, field = 'type'): TypedArrayConstructor {
  const name = typeof type === 'string' ? type : typeof type === 'function' ? (type as { name: string }).name : '';
  const ctor = TYPED_ARRAYS[name];
  if (!ctor || (typeof type === 'function' && type !== ctor)) {
    throw new InvalidArgumentError(field, `expected a typed array type (${Object.keys(TYPED_ARRAYS).join(', ')}), got ${String((type as { name?: string })?.name ?? type)}`);
  }
  return ctor;
}

/** The type name of a typed array instance, or null if it is none of {@link TYPED_ARRAYS}. */
export function typeNameOf(a: unknown): string | null {
  if (!ArrayBuffer.isView(a) || a instanceof DataView) return null;
  const name = a.constructor.name === 'Buffer' ? 'Uint8Array' : a.constructor.name;
  return name in TYPED_ARRAYS ? name : null;
}

/** Validates dims (a number means one dimension) and returns them as an array. */
export function checkDims(dims: unknown, field = 'dims'): number[] {
  const d = typeof dims === 'number' ? [dims] : dims;
  if (!Array.isArray(d) || d.length === 0 || !d.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new InvalidArgumentError(field, `expected whole numbers >= 0, one per dimension, e.g. [100, 100]; got ${JSON.stringify(dims)}`);
  }
  return [...d];
}

export function product(xs: readonly number[]): number {
  let p = 1;
  for (const x of xs) p *= x;
  return p;
}

/** Row-major strides in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Prime factors of n, largest first. */
function primeFactors(n: number): number[] {
  const out = new Set<number>();
  for (let f = 2; f * f <= n; f++) {
    while (n % f === 0) {
      out.add(f);
      n /= f;
    }
  }
  if (n > 1) out.add(n);
  return [...out].sort((a, b) => b - a);
}

/**
 * Julia's `defaultdist`: hands the largest prime factors of `np` to the largest dimensions. Ties
 * go to the first (slowest-varying) dimension, so in row-major order chunks stay contiguous where
 * they can. A factor bigger than the dimension it would split is dropped, so the product can be
 * less than `np` for small arrays.
 *
 * @example defaultDist([100, 100, 10], 4) // [2, 2, 1]
 */
export function defaultDist(dims: readonly number[], np: number): number[] {
  const d = [...dims];
  const dist = d.map(() => 1);
  const f = primeFactors(np);
  let k = 0;
  while (np > 1 && k < f.length) {
    if (np % f[k]! !== 0) {
      k++;
      continue;
    }
    const fac = f[k]!;
    let dno = 0;
    for (let i = 1; i < d.length; i++) if (d[i]! > d[dno]!) dno = i;
    if (d[dno]! >= fac) {
      d[dno] = Math.floor(d[dno]! / fac);
      dist[dno]! *= fac;
    }
    np /= fac;
  }
  return dist;
}

/** Where `size` elements are cut into `pieces` blocks: `pieces + 1` offsets from 0 to size. */
export function cutsOf(size: number, pieces: number): number[] {
  const c = new Array<number>(pieces + 1);
  for (let i = 0; i <= pieces; i++) c[i] = Math.floor((i * size) / pieces);
  return c;
}

/** The block structure of an array: cuts per dimension and the ranges of each chunk. */
export interface Layout {
  dims: number[];
  dist: number[];
  /** Per dimension, `dist[i] + 1` offsets. */
  cuts: number[][];
  /** Ranges of chunk k, chunks numbered row-major over the grid. */
  chunks: Ranges[];
}

export function layoutOf(dims: readonly number[], dist: readonly number[]): Layout {
  if (dist.length !== dims.length || !dist.every((x) => Number.isInteger(x) && x >= 1)) {
    throw new InvalidArgumentError('dist', `expected ${dims.length} whole numbers >= 1 (blocks per dimension), got ${JSON.stringify(dist)}`);
  }
  const cuts = dims.map((n, i) => cutsOf(n, dist[i]!));
  const chunks: Ranges[] = [];
  const n = product(dist);
  const coord = dist.map(() => 0);
  for (let k = 0; k < n; k++) {
    chunks.push(coord.map((c, i) => [cuts[i]![c]!, cuts[i]![c + 1]!] as Range));
    for (let i = coord.length - 1; i >= 0; i--) {
      if (++coord[i]! < dist[i]!) break;
      coord[i] = 0;
    }
  }
  return { dims: [...dims], dist: [...dist], cuts, chunks };
}

export function shapeOf(r: Ranges): number[] {
  return r.map(([s, e]) => e - s);
}

export function lengthOf(r: Ranges): number {
  let p = 1;
  for (const [s, e] of r) p *= e - s;
  return p;
}

/** The whole index space of `dims`. */
export function fullRanges(dims: readonly number[]): Ranges {
  return dims.map((n) => [0, n] as Range);
}

/** Validates ranges against dims; a bare number `i` means `[i, i + 1)`. */
export function checkRanges(ranges: unknown, dims: readonly number[], field = 'ranges'): Ranges {
  if (!Array.isArray(ranges) || ranges.length !== dims.length) {
    throw new InvalidArgumentError(field, `expected ${dims.length} [start, end) pairs (one per dimension of [${dims.join(', ')}]), got ${JSON.stringify(ranges)}`);
  }
  return ranges.map((r, i) => {
    const pair = typeof r === 'number' ? [r, r + 1] : r;
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new InvalidArgumentError(field, `dimension ${i}: expected [start, end), got ${JSON.stringify(r)}`);
    }
    const [s, e] = pair as [number, number];
    if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e < s || e > dims[i]!) {
      throw new InvalidArgumentError(field, `dimension ${i}: [${s}, ${e}) is outside [0, ${dims[i]}) or reversed (ranges are 0-based, end exclusive)`);
    }
    return [s, e] as Range;
  });
}

/** The intersection of two ranges, or null if it is empty. */
export function intersect(a: Ranges, b: Ranges): Ranges | null {
  const out: Ranges = [];
  for (let i = 0; i < a.length; i++) {
    const s = Math.max(a[i]![0], b[i]![0]);
    const e = Math.min(a[i]![1], b[i]![1]);
    if (e <= s) return null;
    out.push([s, e]);
  }
  return out;
}

/** The first block index `j` with `cuts[j] <= i < cuts[j + 1]` (skipping empty blocks). */
function blockOf(cuts: number[], i: number): number {
  let lo = 0;
  let hi = cuts.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cuts[mid]! <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The chunks a (non-empty) block of indexes touches, each with the part of the block it holds. */
export function chunksTouching(layout: Layout, r: Ranges): { index: number; part: Ranges }[] {
  if (lengthOf(r) === 0) return [];
  const lo = r.map(([s], i) => blockOf(layout.cuts[i]!, s));
  const hi = r.map(([, e], i) => blockOf(layout.cuts[i]!, e - 1));
  const out: { index: number; part: Ranges }[] = [];
  const coord = [...lo];
  const dstr = stridesOf(layout.dist);
  for (;;) {
    let index = 0;
    for (let i = 0; i < coord.length; i++) index += coord[i]! * dstr[i]!;
    const part = intersect(layout.chunks[index]!, r);
    if (part) out.push({ index, part });
    let i = coord.length - 1;
    for (; i >= 0; i--) {
      if (++coord[i]! <= hi[i]!) break;
      coord[i] = lo[i]!;
    }
    if (i < 0) return out;
  }
}

/** Below this run length a plain loop beats `subarray` + `set`. */
const SET_MIN_RUN = 32;

/**
 * Copies the block `block` (global ranges) from `src`, which holds the global block `srcAt`, into
 * `dst`, which holds the global block `dstAt`. Both row-major; `block` lies inside both.
 * Contiguous runs are copied with `TypedArray.set`.
 */
export function copyBlock(src: TypedArray, srcAt: Ranges, dst: TypedArray, dstAt: Ranges, block: Ranges): void {
  const n = block.length;
  const ext = shapeOf(block);
  if (lengthOf(block) === 0) return;
  const sShape = shapeOf(srcAt);
  const dShape = shapeOf(dstAt);
  const sStr = stridesOf(sShape);
  const dStr = stridesOf(dShape);
  // Merge trailing dimensions that are whole in both arrays into one contiguous run.
  let inner = n - 1;
  let run = ext[inner]!;
  while (inner > 0 && ext[inner] === sShape[inner] && ext[inner] === dShape[inner]) {
    inner--;
    run *= ext[inner]!;
  }
  let sOff = 0;
  let dOff = 0;
  for (let i = 0; i < n; i++) {
    sOff += (block[i]![0] - srcAt[i]![0]) * sStr[i]!;
    dOff += (block[i]![0] - dstAt[i]![0]) * dStr[i]!;
  }
  // `inner` is the first dimension inside the run; the loops go over dimensions [0, inner).
  const outer = ext.slice(0, inner);
  const count = product(outer);
  const coord = outer.map(() => 0);
  const s = src as unknown as { [i: number]: number | bigint; subarray(a: number, b: number): TypedArray };
  const d = dst as unknown as { [i: number]: number | bigint; set(a: TypedArray, o: number): void };
  for (let k = 0; k < count; k++) {
    if (run >= SET_MIN_RUN) {
      d.set(s.subarray(sOff, sOff + run), dOff);
    } else {
      for (let j = 0; j < run; j++) d[dOff + j] = s[sOff + j]!;
    }
    for (let i = inner - 1; i >= 0; i--) {
      if (++coord[i]! < ext[i]!) {
        sOff += sStr[i]!;
        dOff += dStr[i]!;
        break;
      }
      coord[i] = 0;
      sOff -= (ext[i]! - 1) * sStr[i]!;
      dOff -= (ext[i]! - 1) * dStr[i]!;
    }
  }
}

/** Whether `block` is one contiguous run of an array holding `at`. */
export function isContiguous(at: Ranges, block: Ranges): boolean {
  let i = 0;
  // Leading dimensions of extent 1, then at most one partial dimension, then whole ones.
  while (i < block.length - 1 && block[i]![1] - block[i]![0] === 1) i++;
  for (let j = i + 1; j < block.length; j++) {
    if (block[j]![0] !== at[j]![0] || block[j]![1] !== at[j]![1]) return false;
  }
  return true;
}

/** Offset of the first element of `block` in an array holding `at` (row-major). */
export function offsetIn(at: Ranges, block: Ranges): number {
  const str = stridesOf(shapeOf(at));
  let o = 0;
  for (let i = 0; i < block.length; i++) o += (block[i]![0] - at[i]![0]) * str[i]!;
  return o;
}

/**
 * Julia's `range_1dim` for shared arrays: `n` disjoint linear slices of `length` elements, the
 * last one taking the remainder. With fewer elements than slices, slice `i` is `[i, i + 1)` or
 * empty.
 */
export function linearSlice(length: number, n: number, i: number): Range {
  if (length < n) return i < length ? [i, i + 1] : [0, 0];
  const part = Math.floor(length / n);
  return [i * part, i === n - 1 ? length : (i + 1) * part];
}
