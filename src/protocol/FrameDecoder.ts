/**
 * Turns a byte stream into frames. Bytes between two 0x00 delimiters are one
 * candidate frame; a candidate that is not valid COBS, is too short, is longer than
 * the negotiated maximum, has a length field that disagrees with its size, or fails
 * its CRC is discarded and reported (never silently), and decoding carries on at the
 * next delimiter.
 *
 * Memory is bounded: at most one maximum-size encoded frame is buffered; a longer run
 * without a delimiter is counted and dropped as it arrives.
 */
import { crc32 } from 'node:zlib';
import { cobsDecodeInto, cobsMaxEncodedLength } from './cobs.js';
import { CRC_BYTES, FRAME_OVERHEAD, HEADER_BYTES, PROTOCOL_MAX_PAYLOAD, type Frame } from './frame.js';
import type { ErrorCode } from '../errors.js';

export type DiscardReason = Extract<ErrorCode, 'FRAME_CRC' | 'FRAME_TRUNCATED' | 'FRAME_OVERSIZED' | 'FRAME_BAD_COBS' | 'FRAME_BAD_LENGTH'>;

export interface FrameDecoderStats {
  frames: number;
  discarded: number;
  discardedBytes: number;
  byReason: Record<DiscardReason, number>;
}

export interface FrameDecoderEvents {
  onFrame: (frame: Frame) => void;
  onDiscard?: (reason: DiscardReason, bytes: number) => void;
  /**
   * Memory for a frame of `bytes` encoded bytes (at least that many), which the frame's
   * payload then views; undefined (or no hook) means a fresh allocation. Session lends
   * pooled buffers here while readRange() runs (FramePool).
   */
  allocate?: (bytes: number) => Buffer | undefined;
}

export class FrameDecoder {
  #maxPayload: number;
  #buf: Buffer;
  #len = 0;
  #overflowing = false;
  #overflowBytes = 0;
  readonly #events: FrameDecoderEvents;
  readonly stats: FrameDecoderStats = {
    frames: 0,
    discarded: 0,
    discardedBytes: 0,
    byReason: { FRAME_CRC: 0, FRAME_TRUNCATED: 0, FRAME_OVERSIZED: 0, FRAME_BAD_COBS: 0, FRAME_BAD_LENGTH: 0 },
  };

  constructor(events: FrameDecoderEvents, maxPayload = PROTOCOL_MAX_PAYLOAD) {
    if (!Number.isInteger(maxPayload) || maxPayload < 0 || maxPayload > PROTOCOL_MAX_PAYLOAD) {
      throw new RangeError(`maxPayload must be an integer from 0 to ${PROTOCOL_MAX_PAYLOAD}, got ${maxPayload}`);
    }
    this.#events = events;
    this.#maxPayload = maxPayload;
    this.#buf = Buffer.allocUnsafe(cobsMaxEncodedLength(maxPayload + FRAME_OVERHEAD));
  }

  get maxPayload(): number {
    return this.#maxPayload;
  }

  /** Lowers (or raises, up to the protocol bound) the largest payload accepted. */
  setMaxPayload(maxPayload: number): void {
    if (maxPayload === this.#maxPayload) return;
    const next = new FrameDecoder(this.#events, maxPayload);
    if (this.#len > next.#buf.length) {
      this.#overflowing = true;
      this.#overflowBytes = this.#len;
      this.#len = 0;
    } else {
      this.#buf.copy(next.#buf, 0, 0, this.#len);
    }
    this.#buf = next.#buf;
    this.#maxPayload = maxPayload;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const end = chunk.indexOf(0, pos);
      if (end === -1) {
        this.#accumulate(chunk, pos, chunk.length);
        return;
      }
      if (this.#len === 0 && !this.#overflowing) {
        // Whole candidate inside this chunk: decode straight from it, no copy.
        if (end > pos) this.#candidate(chunk.subarray(pos, end));
      } else {
        this.#accumulate(chunk, pos, end);
        this.#endCandidate();
      }
      pos = end + 1;
    }
  }

  /** Bytes held for an unfinished frame (for tests of the memory bound). */
  get bufferedBytes(): number {
    return this.#len;
  }

  #accumulate(chunk: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n === 0) return;
    if (this.#overflowing) {
      this.#overflowBytes += n;
      return;
    }
    if (this.#len + n > this.#buf.length) {
      this.#overflowing = true;
      this.#overflowBytes = this.#len + n;
      this.#len = 0;
      return;
    }
    chunk.copy(this.#buf, this.#len, from, to);
    this.#len += n;
  }

  #endCandidate(): void {
    if (this.#overflowing) {
      this.#discard('FRAME_OVERSIZED', this.#overflowBytes);
      this.#overflowing = false;
      this.#overflowBytes = 0;
      return;
    }
    const n = this.#len;
    this.#len = 0;
    if (n > 0) this.#candidate(this.#buf.subarray(0, n));
  }

  #candidate(encoded: Buffer): void {
    if (encoded.length > this.#buf.length) {
      this.#discard('FRAME_OVERSIZED', encoded.length);
      return;
    }
    // The decoded frame is handed to the consumer, who may keep its payload: own memory.
    const raw = this.#events.allocate?.(encoded.length) ?? Buffer.allocUnsafe(encoded.length);
    const n = cobsDecodeInto(encoded, raw);
    if (n < 0) {
      this.#discard('FRAME_BAD_COBS', encoded.length);
      return;
    }
    if (n < FRAME_OVERHEAD) {
      this.#discard('FRAME_TRUNCATED', encoded.length);
      return;
    }
    const length = raw.readUInt32LE(8);
    if (length > this.#maxPayload) {
      this.#discard('FRAME_OVERSIZED', encoded.length);
      return;
    }
    if (length !== n - FRAME_OVERHEAD) {
      // Check the CRC first: a corrupted length is a CRC error, a consistent lie is a length error.
      const crcOk = crc32(raw.subarray(0, n - CRC_BYTES)) === raw.readUInt32LE(n - CRC_BYTES);
      this.#discard(crcOk ? 'FRAME_BAD_LENGTH' : length > n - FRAME_OVERHEAD ? 'FRAME_TRUNCATED' : 'FRAME_CRC', encoded.length);
      return;
    }
    if (crc32(raw.subarray(0, HEADER_BYTES + length)) !== raw.readUInt32LE(HEADER_BYTES + length)) {
      this.#discard('FRAME_CRC', encoded.length);
      return;
    }
    this.stats.frames++;
    this.#events.onFrame({
      version: raw[0]!,
      type: raw[1]!,
      flags: raw[2]!,
      seq: raw.readUInt32LE(4),
      payload: raw.subarray(HEADER_BYTES, HEADER_BYTES + length),
    });
  }

  #discard(reason: DiscardReason, bytes: number): void {
    this.stats.discarded++;
    this.stats.discardedBytes += bytes;
    this.stats.byReason[reason]++;
    this.#events.onDiscard?.(reason, bytes);
  }
}
