/**
 * Payload encoding (docs/protocol.md §4). A message is a fixed sequence of fields,
 * each little-endian, with no tags and no padding:
 *
 *   u8 u16 u32 i32   as named
 *   u64 i64          8 bytes; values above 2^53-1 are refused (offsets and times fit)
 *   bool             1 byte, 0 or 1; anything else is refused
 *   str              u16 byte length ‖ UTF-8 (must be valid; each str has a max length)
 *   bytes            u32 length ‖ raw bytes (each has a max length)
 *   fixed(n)         exactly n raw bytes
 *   list(struct)     u16 count ‖ count × struct
 *
 * Trailing bytes after the last field are ignored, so a later minor revision can
 * append fields. Every read is bounds-checked; a short or malformed payload is a
 * DockError PROTO_BAD_PAYLOAD naming the field.
 */
import { DockError } from '../errors.js';

export type Field =
  | { readonly k: 'u8' | 'u16' | 'u32' | 'i32' | 'u64' | 'i64' | 'bool' }
  | { readonly k: 'str'; readonly max: number }
  | { readonly k: 'bytes'; readonly max: number }
  | { readonly k: 'fixed'; readonly n: number }
  | { readonly k: 'list'; readonly of: Struct; readonly max: number };

export type Struct = { readonly [name: string]: Field };

export type FieldValue<F extends Field> = F extends { k: 'bool' }
  ? boolean
  : F extends { k: 'str' }
    ? string
    : F extends { k: 'bytes' | 'fixed' }
      ? Buffer
      : F extends { k: 'list'; of: infer S extends Struct }
        ? StructValue<S>[]
        : number;

export type StructValue<S extends Struct> = { -readonly [K in keyof S]: FieldValue<S[K]> };

export const u8 = { k: 'u8' } as const;
export const u16 = { k: 'u16' } as const;
export const u32 = { k: 'u32' } as const;
export const i32 = { k: 'i32' } as const;
export const u64 = { k: 'u64' } as const;
export const i64 = { k: 'i64' } as const;
export const bool = { k: 'bool' } as const;
export const str = (max: number) => ({ k: 'str', max }) as const;
export const bytes = (max: number) => ({ k: 'bytes', max }) as const;
export const fixed = (n: number) => ({ k: 'fixed', n }) as const;
export const list = <S extends Struct>(of: S, max: number) => ({ k: 'list', of, max }) as const;

// ignoreBOM: a leading U+FEFF is data, kept as sent, never silently stripped.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const TWO_32 = 2 ** 32;

function bad(field: string, why: string): DockError {
  return new DockError('PROTO_BAD_PAYLOAD', `malformed payload: field "${field}" ${why}`, { field });
}

/** Bytes `v` takes as field `f`; checks every bound a write would check, so a measured value encodes. */
function fieldSize(f: Field, v: unknown, name: string): number {
  switch (f.k) {
    case 'u8':
      checkInt(name, v, 0, 0xff);
      return 1;
    case 'bool':
      return 1;
    case 'u16':
      checkInt(name, v, 0, 0xffff);
      return 2;
    case 'u32':
      checkInt(name, v, 0, 0xffffffff);
      return 4;
    case 'i32':
      checkInt(name, v, -0x80000000, 0x7fffffff);
      return 4;
    case 'u64':
      checkInt(name, v, 0, Number.MAX_SAFE_INTEGER);
      return 8;
    case 'i64':
      checkInt(name, v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      return 8;
    case 'str': {
      const n = Buffer.byteLength(v as string, 'utf8');
      if (n > f.max) throw bad(name, `is ${n} bytes, more than its maximum ${f.max}`);
      return 2 + n;
    }
    case 'bytes': {
      const n = (v as Uint8Array).length;
      if (n > f.max) throw bad(name, `is ${n} bytes, more than its maximum ${f.max}`);
      return 4 + n;
    }
    case 'fixed':
      if ((v as Uint8Array).length !== f.n) throw bad(name, `must be exactly ${f.n} bytes, got ${(v as Uint8Array).length}`);
      return f.n;
    case 'list': {
      const items = v as Record<string, unknown>[];
      if (items.length > f.max) throw bad(name, `has ${items.length} entries, more than its maximum ${f.max}`);
      let n = 2;
      for (const item of items) n += structSize(f.of, item);
      return n;
    }
  }
}

function structSize(s: Struct, v: Record<string, unknown>): number {
  let n = 0;
  for (const [name, f] of Object.entries(s)) n += fieldSize(f, v[name], name);
  return n;
}

function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(name, `must be an integer from ${min} to ${max}, got ${String(v)}`);
  return v;
}

function writeField(buf: Buffer, pos: number, f: Field, v: unknown, name: string): number {
  switch (f.k) {
    case 'u8':
      buf[pos] = checkInt(name, v, 0, 0xff);
      return pos + 1;
    case 'bool':
      buf[pos] = v ? 1 : 0;
      return pos + 1;
    case 'u16':
      buf.writeUInt16LE(checkInt(name, v, 0, 0xffff), pos);
      return pos + 2;
    case 'u32':
      buf.writeUInt32LE(checkInt(name, v, 0, 0xffffffff), pos);
      return pos + 4;
    case 'i32':
      buf.writeInt32LE(checkInt(name, v, -0x80000000, 0x7fffffff), pos);
      return pos + 4;
    case 'u64': {
      const n = checkInt(name, v, 0, Number.MAX_SAFE_INTEGER);
      buf.writeUInt32LE(n % TWO_32, pos);
      buf.writeUInt32LE(Math.floor(n / TWO_32), pos + 4);
      return pos + 8;
    }
    case 'i64':
      buf.writeBigInt64LE(BigInt(checkInt(name, v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)), pos);
      return pos + 8;
    case 'str': {
      const n = buf.write(v as string, pos + 2, 'utf8');
      buf.writeUInt16LE(n, pos);
      return pos + 2 + n;
    }
    case 'bytes': {
      const b = v as Uint8Array;
      buf.writeUInt32LE(b.length, pos);
      buf.set(b, pos + 4);
      return pos + 4 + b.length;
    }
    case 'fixed':
      buf.set(v as Uint8Array, pos);
      return pos + f.n;
    case 'list': {
      const items = v as Record<string, unknown>[];
      buf.writeUInt16LE(items.length, pos);
      let p = pos + 2;
      for (const item of items) p = writeStruct(buf, p, f.of, item);
      return p;
    }
  }
}

function writeStruct(buf: Buffer, pos: number, s: Struct, v: Record<string, unknown>): number {
  let p = pos;
  for (const [name, f] of Object.entries(s)) p = writeField(buf, p, f, v[name], name);
  return p;
}

export function encodeStruct<S extends Struct>(s: S, value: StructValue<S>): Buffer {
  const v = value as Record<string, unknown>;
  const buf = Buffer.allocUnsafe(structSize(s, v));
  writeStruct(buf, 0, s, v);
  return buf;
}

/**
 * Bytes `value` encodes to as `s`, after checking every field (a value that measures
 * encodes without throwing). With encodeStructInto, a large payload is written
 * straight into its frame instead of into a payload buffer first.
 */
export function encodedLength<S extends Struct>(s: S, value: StructValue<S>): number {
  return structSize(s, value as Record<string, unknown>);
}

/** Writes `value` into `buf` at `offset` (room for encodedLength() bytes); returns the end offset. */
export function encodeStructInto<S extends Struct>(s: S, value: StructValue<S>, buf: Buffer, offset: number): number {
  return writeStruct(buf, offset, s, value as Record<string, unknown>);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  need(n: number, name: string): void {
    if (this.pos + n > this.buf.length) throw bad(name, `needs ${n} bytes at offset ${this.pos}, payload has ${this.buf.length - this.pos} left`);
  }
}

function readField(r: Reader, f: Field, name: string): unknown {
  const b = r.buf;
  switch (f.k) {
    case 'u8':
      r.need(1, name);
      return b[r.pos++]!;
    case 'bool': {
      r.need(1, name);
      const x = b[r.pos++]!;
      if (x > 1) throw bad(name, `must be 0 or 1, got ${x}`);
      return x === 1;
    }
    case 'u16':
      r.need(2, name);
      r.pos += 2;
      return b.readUInt16LE(r.pos - 2);
    case 'u32':
      r.need(4, name);
      r.pos += 4;
      return b.readUInt32LE(r.pos - 4);
    case 'i32':
      r.need(4, name);
      r.pos += 4;
      return b.readInt32LE(r.pos - 4);
    case 'u64': {
      r.need(8, name);
      const lo = b.readUInt32LE(r.pos);
      const hi = b.readUInt32LE(r.pos + 4);
      r.pos += 8;
      if (hi > 0x1fffff) throw bad(name, 'is larger than 2^53-1');
      return hi * TWO_32 + lo;
    }
    case 'i64': {
      r.need(8, name);
      const x = b.readBigInt64LE(r.pos);
      r.pos += 8;
      if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < BigInt(Number.MIN_SAFE_INTEGER)) throw bad(name, 'is outside ±(2^53-1)');
      return Number(x);
    }
    case 'str': {
      r.need(2, name);
      const n = b.readUInt16LE(r.pos);
      r.pos += 2;
      if (n > f.max) throw bad(name, `claims ${n} bytes, more than its maximum ${f.max}`);
      r.need(n, name);
      r.pos += n;
      try {
        return utf8.decode(b.subarray(r.pos - n, r.pos));
      } catch {
        throw bad(name, 'is not valid UTF-8');
      }
    }
    case 'bytes': {
      r.need(4, name);
      const n = b.readUInt32LE(r.pos);
      r.pos += 4;
      if (n > f.max) throw bad(name, `claims ${n} bytes, more than its maximum ${f.max}`);
      r.need(n, name);
      r.pos += n;
      return b.subarray(r.pos - n, r.pos);
    }
    case 'fixed':
      r.need(f.n, name);
      r.pos += f.n;
      return b.subarray(r.pos - f.n, r.pos);
    case 'list': {
      r.need(2, name);
      const count = b.readUInt16LE(r.pos);
      r.pos += 2;
      if (count > f.max) throw bad(name, `claims ${count} entries, more than its maximum ${f.max}`);
      const items: unknown[] = [];
      for (let i = 0; i < count; i++) items.push(readStruct(r, f.of));
      return items;
    }
  }
}

function readStruct(r: Reader, s: Struct): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(s)) out[name] = readField(r, f, name);
  return out;
}

/** Decodes `payload` as `s`. Byte fields are views into `payload`, not copies. */
export function decodeStruct<S extends Struct>(s: S, payload: Buffer): StructValue<S> {
  return readStruct(new Reader(payload), s) as StructValue<S>;
}
