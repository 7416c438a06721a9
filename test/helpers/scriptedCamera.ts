// A camera that answers with whatever bytes a test scripts: for hostile-device tests.
import { crc32 } from 'node:zlib';
import { LoopbackTransport } from '../../src/hal/LoopbackTransport.js';
import { encodeStruct } from '../../src/protocol/codec.js';
import { cobsEncode } from '../../src/protocol/cobs.js';
import { encodeFrame, FLAG_RESPONSE, FRAME_OVERHEAD, type Frame } from '../../src/protocol/frame.js';
import { FrameDecoder } from '../../src/protocol/FrameDecoder.js';
import { MESSAGES, messageName, type MessageName, type Response } from '../../src/protocol/messages.js';

export const GOOD_HELLO: Response<'HELLO'> = {
  version: 1,
  vendor: 'Test',
  model: 'Scripted',
  serial: 'TEST-0001',
  firmware: '1.0',
  hardware: 'a',
  capabilities: 0,
  maxPayload: 65536,
  window: 4,
};

export function answer<N extends MessageName>(name: N, seq: number, res: Response<N>): Buffer {
  return encodeFrame({ type: MESSAGES[name].type, flags: FLAG_RESPONSE, seq, payload: encodeStruct(MESSAGES[name].res, res as never) });
}

/** A frame with a valid CRC over exactly the given header fields and payload bytes. */
export function rawFrame(type: number, seq: number, payload: Buffer, lengthField = payload.length, flags = FLAG_RESPONSE): Buffer {
  const raw = Buffer.alloc(FRAME_OVERHEAD + payload.length);
  raw[0] = 1;
  raw[1] = type;
  raw[2] = flags;
  raw.writeUInt32LE(seq, 4);
  raw.writeUInt32LE(lengthField, 8);
  payload.copy(raw, 12);
  raw.writeUInt32LE(crc32(raw.subarray(0, raw.length - 4)), raw.length - 4);
  return Buffer.concat([Buffer.from([0]), cobsEncode(raw), Buffer.from([0])]);
}

export type Script = (name: MessageName | undefined, frame: Frame, attempt: number) => Buffer | Buffer[] | null;

/** Returns the dock's end; the camera end answers HELLO normally unless the script answers it. */
export function scriptedCamera(script: Script): { dock: LoopbackTransport; requests: { name: MessageName | undefined; seq: number }[] } {
  const [dock, camera] = LoopbackTransport.pair('scripted');
  const requests: { name: MessageName | undefined; seq: number }[] = [];
  const attempts = new Map<string, number>();
  const decoder = new FrameDecoder({
    onFrame: (f) => {
      const name = messageName(f.type);
      requests.push({ name, seq: f.seq });
      const n = (attempts.get(String(name)) ?? 0) + 1;
      attempts.set(String(name), n);
      let out = script(name, f, n);
      if (out === null && name === 'HELLO') out = answer('HELLO', f.seq, GOOD_HELLO);
      if (out === null) return;
      for (const b of Array.isArray(out) ? out : [out]) void camera.write(b);
    },
  });
  camera.on('data', (c) => decoder.push(c));
  return { dock, requests };
}
