/**
 * The media check: is this a playable clip of about the length its manifest says?
 * A clip that fails it but matches its signed hash is stored and flagged, never
 * quarantined: the camera signed it, and evidence is kept as recorded.
 */
import { probe } from '../media.js';
import type { Manifest } from '../custody/manifest.js';

export const DURATION_TOLERANCE_MS = 1500;

export interface MediaFinding {
  ok: boolean;
  detail: string; // e.g. "mp4 h264/aac 3.00 s"
}

export async function mediaCheck(path: string, m: Manifest): Promise<MediaFinding> {
  if (m.container !== 'mp4') return { ok: true, detail: `${m.container}: no media check for this container` };
  try {
    const p = await probe(path);
    const detail = `mp4 ${p.videoCodec ?? 'no-video'}/${p.audioCodec ?? 'no-audio'} ${p.durationS.toFixed(2)} s`;
    if (!p.container.includes('mp4')) return { ok: false, detail: `container is ${p.container}, not mp4` };
    if (!p.videoCodec) return { ok: false, detail: `${detail}: no video stream` };
    if (Math.abs(p.durationS * 1000 - m.durationMs) > DURATION_TOLERANCE_MS) return { ok: false, detail: `${detail}: manifest says ${(m.durationMs / 1000).toFixed(2)} s` };
    return { ok: true, detail };
  } catch (err) {
    return { ok: false, detail: `ffprobe cannot read it: ${(err as Error).message.slice(0, 200)}` };
  }
}
