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
 */
export function cobsEncodeInto(src: Uint8Array, dst: Uint8Array, dstOffset = 0): number {
  let codeIndex = dstOffset;
  let out = dstOffset + 1;
  let code = 1;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0) {
      dst[codeIndex] = code;
      codeIndex = out++;
      code = 1;
    } else {
      dst[out++] = b;
      code++;
      if (code === 0xff) {
        dst[codeIndex] = code;
        codeIndex = out++;
        code = 1;
      }
    }
  }
  dst[codeIndex] = code;
  return out - dstOffset;
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
  let i = 0;
  let out = 0;
  const n = src.length;
  while (i < n) {
    const code = src[i]!;
    if (code === 0) return -1;
    const end = i + code;
    if (end > n) return -1;
    i++;
    while (i < end) {
      const b = src[i++]!;
      if (b === 0) return -1;
      dst[out++] = b;
    }
    if (code !== 0xff && i < n) dst[out++] = 0;
  }
  return out;
}

export function cobsDecode(src: Uint8Array): Buffer | undefined {
  const dst = Buffer.allocUnsafe(src.length);
  const n = cobsDecodeInto(src, dst);
  return n < 0 ? undefined : dst.subarray(0, n);
}
