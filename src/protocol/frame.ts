/**
 * One frame on the wire (docs/protocol.md §2):
 *
 *   0x00 ‖ COBS( header(12) ‖ payload(length) ‖ crc32(4) ) ‖ 0x00
 *
 *   header: version u8 | type u8 | flags u8 | reserved u8 | seq u32le | length u32le
 *   crc32:  zlib CRC-32 (IEEE 802.3) of header ‖ payload, little-endian
 *
 * The leading delimiter flushes any line noise before the frame into its own (bad)
 * frame, so noise costs at most the frame it touches.
 */
import { crc32 } from 'node:zlib';
import { cobsEncodeInto, cobsMaxEncodedLength } from './cobs.js';

export const FRAME_VERSION = 1;
export const HEADER_BYTES = 12;
export const CRC_BYTES = 4;
export const FRAME_OVERHEAD = HEADER_BYTES + CRC_BYTES;
/** Hard upper bound on a payload, whatever a peer negotiates: 1 MiB. */
export const PROTOCOL_MAX_PAYLOAD = 1024 * 1024;
/** Payload size every implementation must accept before HELLO has negotiated one. */
export const MIN_MAX_PAYLOAD = 4096;

export const FLAG_RESPONSE = 0x01;

export interface Frame {
  version: number;
  type: number;
  flags: number;
  seq: number; // u32
  payload: Buffer;
}

/** Worst-case bytes on the wire for a payload of `n` bytes. */
export function wireLength(payloadBytes: number): number {
  return cobsMaxEncodedLength(FRAME_OVERHEAD + payloadBytes) + 2;
}

export function encodeFrame(frame: Omit<Frame, 'version'> & { version?: number }): Buffer {
  const { payload } = frame;
  const raw = Buffer.allocUnsafe(FRAME_OVERHEAD + payload.length);
  raw[0] = frame.version ?? FRAME_VERSION;
  raw[1] = frame.type;
  raw[2] = frame.flags;
  raw[3] = 0;
  raw.writeUInt32LE(frame.seq >>> 0, 4);
  raw.writeUInt32LE(payload.length, 8);
  payload.copy(raw, HEADER_BYTES);
  raw.writeUInt32LE(crc32(raw.subarray(0, HEADER_BYTES + payload.length)), HEADER_BYTES + payload.length);
  const wire = Buffer.allocUnsafe(wireLength(payload.length));
  wire[0] = 0;
  const n = cobsEncodeInto(raw, wire, 1);
  wire[n + 1] = 0;
  return wire.subarray(0, n + 2);
}
