// The receiver of docs/protocol.md §2.6, written from the spec alone, as the oracle
// the fuzz tests hold FrameDecoder to: the C reference COBS decoder of §2.4.3 and
// the bitwise CRC-32 of §2.3, transcribed, sharing no code with src/protocol.
//
//   whole stream ─► split at every 0x00 ─► each complete candidate, checks 1..6 in order
//                                       └► the unterminated tail: what a receiver holds

export type ModelReason = 'FRAME_OVERSIZED' | 'FRAME_BAD_COBS' | 'FRAME_TRUNCATED' | 'FRAME_BAD_LENGTH' | 'FRAME_CRC';

export interface ModelFrame {
  version: number;
  type: number;
  flags: number;
  seq: number;
  payload: string; // hex
}

export interface ModelResult {
  frames: ModelFrame[];
  discards: [ModelReason, number][]; // reason, encoded bytes of the candidate
  held: number; // bytes an unfinished candidate may keep buffered
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    t[n] = c >>> 0;
  }
  return t;
})();

/** §2.3, table-driven (the same results as the bitwise loop printed there). */
export function specCrc32(p: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of p) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** §2.4.3 cobs_decode: the decoded bytes, or undefined when the block is not valid COBS. */
export function specCobsDecode(src: Uint8Array): Uint8Array | undefined {
  const dst: number[] = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const code = src[i]!;
    if (code === 0 || i + code > n) return undefined;
    const end = i + code;
    for (i++; i < end; i++) {
      if (src[i] === 0) return undefined;
      dst.push(src[i]!);
    }
    if (code !== 0xff && i < n) dst.push(0);
  }
  return Uint8Array.from(dst);
}

/** Emax of §2.6 check 1 for a receiver accepting payloads up to `maxPayload`. */
export function specMaxCandidate(maxPayload: number): number {
  return 16 + maxPayload + Math.ceil((16 + maxPayload) / 254) + 1;
}

const u32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

export function specReceive(stream: Uint8Array, maxPayload: number): ModelResult {
  const emax = specMaxCandidate(maxPayload);
  const frames: ModelFrame[] = [];
  const discards: [ModelReason, number][] = [];
  let start = 0;
  for (let i = 0; i < stream.length; i++) {
    if (stream[i] !== 0) continue;
    const cand = stream.subarray(start, i);
    start = i + 1;
    if (cand.length === 0) continue;
    if (cand.length > emax) {
      discards.push(['FRAME_OVERSIZED', cand.length]);
      continue;
    }
    const raw = specCobsDecode(cand);
    if (!raw) {
      discards.push(['FRAME_BAD_COBS', cand.length]);
      continue;
    }
    const n = raw.length;
    if (n < 16) {
      discards.push(['FRAME_TRUNCATED', cand.length]);
      continue;
    }
    const length = u32(raw, 8);
    if (length > maxPayload) {
      discards.push(['FRAME_OVERSIZED', cand.length]);
      continue;
    }
    if (length !== n - 16) {
      const consistent = specCrc32(raw.subarray(0, n - 4)) === u32(raw, n - 4);
      discards.push([consistent ? 'FRAME_BAD_LENGTH' : length > n - 16 ? 'FRAME_TRUNCATED' : 'FRAME_CRC', cand.length]);
      continue;
    }
    if (specCrc32(raw.subarray(0, 12 + length)) !== u32(raw, 12 + length)) {
      discards.push(['FRAME_CRC', cand.length]);
      continue;
    }
    frames.push({ version: raw[0]!, type: raw[1]!, flags: raw[2]!, seq: u32(raw, 4), payload: Buffer.from(raw.subarray(12, 12 + length)).toString('hex') });
  }
  const tail = stream.length - start;
  return { frames, discards, held: tail <= emax ? tail : 0 };
}

/**
 * A raw frame as §2.1 lays it out, with every header byte under the caller's
 * control (the reserved byte too) and, optionally, a length field or CRC that lie.
 */
export function specFrame(f: { version: number; type: number; flags: number; reserved: number; seq: number; payload: Uint8Array; lengthField?: number; crcXor?: number }): Buffer {
  const raw = Buffer.alloc(16 + f.payload.length);
  raw[0] = f.version;
  raw[1] = f.type;
  raw[2] = f.flags;
  raw[3] = f.reserved;
  raw.writeUInt32LE(f.seq >>> 0, 4);
  raw.writeUInt32LE((f.lengthField ?? f.payload.length) >>> 0, 8);
  raw.set(f.payload, 12);
  raw.writeUInt32LE((specCrc32(raw.subarray(0, 12 + f.payload.length)) ^ (f.crcXor ?? 0)) >>> 0, 12 + f.payload.length);
  return Buffer.concat([Buffer.from([0]), specCobsEncode(raw), Buffer.from([0])]);
}

/** §2.4.2 cobs_encode. */
export function specCobsEncode(src: Uint8Array): Buffer {
  const dst: number[] = [0];
  let codeAt = 0;
  let code = 1;
  for (const b of src) {
    if (b === 0) {
      dst[codeAt] = code;
      codeAt = dst.length;
      dst.push(0);
      code = 1;
    } else {
      dst.push(b);
      if (++code === 0xff) {
        dst[codeAt] = code;
        codeAt = dst.length;
        dst.push(0);
        code = 1;
      }
    }
  }
  dst[codeAt] = code;
  return Buffer.from(dst);
}
