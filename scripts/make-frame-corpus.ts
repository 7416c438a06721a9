// Writes fixtures/frames/: a corpus of malformed frames, each with the discard reason
// (or typed error) a receiver must give it. Regenerate with `npx tsx scripts/make-frame-corpus.ts`.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { cobsEncode } from '../src/protocol/cobs.js';
import { encodeFrame, FRAME_OVERHEAD } from '../src/protocol/frame.js';
import { encodeStruct } from '../src/protocol/codec.js';
import { MESSAGES } from '../src/protocol/messages.js';

const dir = new URL('../fixtures/frames/', import.meta.url);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

function raw(type: number, seq: number, payload: Buffer, opts: { length?: number; version?: number; flags?: number; crc?: number } = {}): Buffer {
  const r = Buffer.alloc(FRAME_OVERHEAD + payload.length);
  r[0] = opts.version ?? 1;
  r[1] = type;
  r[2] = opts.flags ?? 0;
  r.writeUInt32LE(seq, 4);
  r.writeUInt32LE(opts.length ?? payload.length, 8);
  payload.copy(r, 12);
  r.writeUInt32LE(opts.crc ?? crc32(r.subarray(0, r.length - 4)), r.length - 4);
  return Buffer.concat([Buffer.from([0]), cobsEncode(r), Buffer.from([0])]);
}

const good = encodeFrame({ type: MESSAGES.STATUS.type, flags: 0, seq: 7, payload: Buffer.alloc(0) });
const read = encodeFrame({ type: MESSAGES.READ.type, flags: 0, seq: 8, payload: encodeStruct(MESSAGES.READ.req, { clipId: 'c-1', offset: 0, length: 10 }) });
const corpus: { file: string; expect: string; why: string; bytes: Buffer }[] = [
  { file: 'bad-cobs-code-past-end.bin', expect: 'FRAME_BAD_COBS', why: 'a COBS code that runs past the end of the block', bytes: Buffer.from([0, 0x20, 1, 2, 3, 0]) },
  { file: 'truncated-header.bin', expect: 'FRAME_TRUNCATED', why: 'fewer bytes than a header and CRC', bytes: Buffer.concat([Buffer.from([0]), cobsEncode(Buffer.from([1, 3, 0, 0, 1])), Buffer.from([0])]) },
  { file: 'truncated-payload.bin', expect: 'FRAME_TRUNCATED', why: 'the frame was cut short in transit', bytes: Buffer.concat([read.subarray(0, read.length - 7), Buffer.from([0])]) },
  { file: 'bad-crc.bin', expect: 'FRAME_CRC', why: 'one payload bit flipped', bytes: raw(MESSAGES.READ.type, 9, Buffer.from('0300632d3100000000000000000a000000', 'hex'), { crc: 0xdeadbeef }) },
  { file: 'lying-length.bin', expect: 'FRAME_BAD_LENGTH', why: 'a valid CRC over a length field that disagrees with the frame', bytes: raw(MESSAGES.STATUS.type, 10, Buffer.alloc(4), { length: 2 }) },
  { file: 'length-beyond-max.bin', expect: 'FRAME_OVERSIZED', why: 'a length field above the negotiated maximum', bytes: raw(MESSAGES.STATUS.type, 11, Buffer.alloc(0), { length: 0x7fffffff }) },
  { file: 'oversized-run.bin', expect: 'FRAME_OVERSIZED', why: 'more bytes without a delimiter than any frame may have', bytes: Buffer.concat([Buffer.from([0]), Buffer.alloc(80_000, 0x41), Buffer.from([0])]) },
  { file: 'unknown-type.bin', expect: 'ERROR:UNKNOWN_TYPE', why: 'a well-formed frame of a type nobody defined', bytes: raw(0x42, 12, Buffer.alloc(0)) },
  { file: 'unknown-version.bin', expect: 'ERROR:UNSUPPORTED_VERSION', why: 'a frame header version this camera does not speak', bytes: raw(MESSAGES.STATUS.type, 13, Buffer.alloc(0), { version: 9 }) },
  { file: 'bad-payload.bin', expect: 'ERROR:BAD_PAYLOAD', why: 'a READ whose payload ends inside a field', bytes: raw(MESSAGES.READ.type, 14, Buffer.from([3, 0, 0x63])) },
  { file: 'invalid-utf8.bin', expect: 'ERROR:BAD_PAYLOAD', why: 'a clip id that is not UTF-8', bytes: raw(MESSAGES.GET_MANIFEST.type, 15, Buffer.from([2, 0, 0xc3, 0x28])) },
  { file: 'u64-above-2-53.bin', expect: 'ERROR:BAD_PAYLOAD', why: 'an offset that does not fit a safe integer', bytes: raw(MESSAGES.READ.type, 16, Buffer.from('0100' + '61' + 'ffffffffffffffff' + '0a000000', 'hex')) },
  { file: 'noise-then-good.bin', expect: 'OK:7', why: 'line noise before a good frame: the good frame is decoded', bytes: Buffer.concat([Buffer.from([0x13, 0x37, 0x00, 0xff, 0xfe]), good]) },
];
const index = corpus.map(({ file, expect, why }) => ({ file, expect, why }));
for (const c of corpus) writeFileSync(new URL(c.file, dir), c.bytes);
writeFileSync(new URL('corpus.json', dir), `${JSON.stringify(index, null, 2)}\n`);
console.log(`wrote ${corpus.length} frames to ${dir.pathname}`);
