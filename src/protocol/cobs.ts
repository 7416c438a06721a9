/**
 * Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999). Removes every 0x00 from
 * a frame so that 0x00 can delimit frames on the wire: a receiver that loses sync
 * (noise, a dropped byte, a camera plugged in mid-frame) recovers at the next 0x00.
 * Overhead is at most one byte per 254, plus one.
 */

/** Largest encoded size of `n` bytes, without the delimiter. */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.ceil(n / 254) + 1;
}

/**
 * Encodes `src` into `dst` at `dstOffset`; returns the number of bytes written.
 * `dst` must have room for cobsMaxEncodedLength(src.length) bytes.
 * Runs between zeros are found with indexOf and copied as blocks (native code), which
 * is several times faster than a byte loop on clip data.
 */
export function cobsEncodeInto(src: Uint8Array, dst: Uint8Array, dstOffset = 0): number {
  const n = src.length;
  let out = dstOffset;
  let pos = 0;
  for (;;) {
    const zero = src.indexOf(0, pos);
    const runEnd = zero === -1 ? n : zero;
    // Emit the run [pos, runEnd) in blocks of at most 254 bytes, each after its code byte.
    while (runEnd - pos >= 254) {
      dst[out] = 0xff;
      dst.set(src.subarray(pos, pos + 254), out + 1);
      out += 255;
      pos += 254;
    }
    const len = runEnd - pos;
    dst[out] = len + 1;
    if (len > 0) dst.set(src.subarray(pos, runEnd), out + 1);
    out += len + 1;
    if (zero === -1) return out - dstOffset;
    pos = zero + 1;
  }
}

export function cobsEncode(src: Uint8Array): Buffer {
  const dst = Buffer.allocUnsafe(cobsMaxEncodedLength(src.length));
  const n = cobsEncodeInto(src, dst);
  return dst.subarray(0, n);
}

/**
 * Decodes one COBS block (no delimiter inside) into `dst`; returns the decoded length,
 * or -1 when the block is not valid COBS (a 0x00 inside, or a code that runs past the end).
 * Decoding in place (`dst === src`) is allowed: the output never overtakes the input.
 */
export function cobsDecodeInto(src: Uint8Array, dst: Uint8Array): number {
  const n = src.length;
  if (src.indexOf(0) !== -1) return -1;
  let i = 0;
  let out = 0;
  while (i < n) {
    const code = src[i]!;
    const end = i + code;
    if (end > n) return -1;
    if (code > 1) {
      // copyWithin semantics when decoding in place: out < i, so the copy never overlaps badly.
      if (dst === src) dst.copyWithin(out, i + 1, end);
      else dst.set(src.subarray(i + 1, end), out);
      out += code - 1;
    }
    i = end;
    if (code !== 0xff && i < n) dst[out++] = 0;
  }
  return out;
}

export function cobsDecode(src: Uint8Array): Buffer | undefined {
  const dst = Buffer.allocUnsafe(src.length);
  const n = cobsDecodeInto(src, dst);
  return n < 0 ? undefined : dst.subarray(0, n);
}
