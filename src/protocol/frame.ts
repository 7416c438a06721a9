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
import { cobsEncodeWithin, cobsMaxEncodedLength } from './cobs.js';

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

export interface FrameHeader {
  version?: number; // default FRAME_VERSION
  type: number;
  flags: number;
  seq: number; // u32
}

export function encodeFrame(frame: Omit<Frame, 'version'> & { version?: number }): Buffer {
  const { payload } = frame;
  return encodeFrameWith(frame, payload.length, (buf, offset) => buf.set(payload, offset));
}

/**
 * Encodes a frame whose payload `writePayload` writes straight into the wire buffer
 * (exactly `payloadBytes` bytes at `offset`), so a large payload is copied once, not
 * first into a payload buffer and then into the frame. One allocation per frame: the
 * raw frame is built at the end of the wire buffer and COBS-encoded forward in place.
 */
export function encodeFrameWith(header: FrameHeader, payloadBytes: number, writePayload: (buf: Buffer, offset: number) => void): Buffer {
  const rawBytes = FRAME_OVERHEAD + payloadBytes;
  const wire = Buffer.allocUnsafe(wireLength(payloadBytes));
  const at = wire.length - 1 - rawBytes; // the encoding's room, plus the leading delimiter
  wire[at] = header.version ?? FRAME_VERSION;
  wire[at + 1] = header.type;
  wire[at + 2] = header.flags;
  wire[at + 3] = 0;
  wire.writeUInt32LE(header.seq >>> 0, at + 4);
  wire.writeUInt32LE(payloadBytes, at + 8);
  writePayload(wire, at + HEADER_BYTES);
  const crcAt = at + HEADER_BYTES + payloadBytes;
  wire.writeUInt32LE(crc32(wire.subarray(at, crcAt)), crcAt);
  wire[0] = 0;
  const n = cobsEncodeWithin(wire, at, rawBytes, 1);
  wire[n + 1] = 0;
  return wire.subarray(0, n + 2);
}
