/**
 * The one module that touches fluent-ffmpeg (unmaintained upstream, so its use is
 * kept small and in one place) and the ffmpeg binaries: making a test-pattern clip for
 * the simulator (fluent-ffmpeg), and probing a clip for the dock's media check (the
 * ffprobe binary directly, with a timeout: see probe()).
 *
 * The packages are loaded at the first clip made or probed, not with this module: a
 * dock that only ever sees synthetic clips (the benchmarks) never loads them.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type Ffmpeg from 'fluent-ffmpeg';
import { DockError } from './errors.js';

const execFileAsync = promisify(execFile);

/** fluent-ffmpeg with the installed ffmpeg and ffprobe binaries (the imports are cached; setting the paths again is harmless). */
async function loadFfmpeg(): Promise<typeof Ffmpeg> {
  const [{ default: ffmpeg }, { default: ffmpegPath }, { default: ffprobePath }] = await Promise.all([import('fluent-ffmpeg'), import('@ffmpeg-installer/ffmpeg'), import('@ffprobe-installer/ffprobe')]);
  ffmpeg.setFfmpegPath(ffmpegPath.path);
  ffmpeg.setFfprobePath(ffprobePath.path);
  return ffmpeg;
}

const FONT_CANDIDATES = ['/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'];

export interface TestClipOptions {
  serial: string;
  startMs: number; // UTC time burned into the first frame
  durationS: number; // default 3
  width: number; // default 640
  height: number; // default 360
  fps: number; // default 15
  toneHz: number; // default 1000
}

export const TEST_CLIP_DEFAULTS = { durationS: 3, width: 640, height: 360, fps: 15, toneHz: 1000 } as const;

/**
 * An H.264 + AAC MP4: the testsrc2 pattern with the camera serial and the running
 * UTC time burned in, and a sine tone. Byte-identical for identical options
 * (bitexact flags, one encoder thread, no wall-clock metadata).
 */
export async function recordTestClip(path: string, options: Partial<TestClipOptions> & Pick<TestClipOptions, 'serial' | 'startMs'>): Promise<void> {
  const ffmpeg = await loadFfmpeg();
  const o = { ...TEST_CLIP_DEFAULTS, ...options };
  const font = FONT_CANDIDATES.find((f) => existsSync(f));
  const startS = Math.floor(o.startMs / 1000);
  const filters = font
    ? [
        `drawtext=fontfile=${font}:text='${o.serial}  %{pts\\:gmtime\\:${startS}\\:%Y-%m-%d %H\\\\\\:%M\\\\\\:%S}Z':fontcolor=white:fontsize=${Math.max(10, Math.round(o.height / 18))}:box=1:boxcolor=black@0.6:x=8:y=8`,
      ]
    : [];
  return new Promise((resolve, reject) => {
    const cmd = ffmpeg()
      .input(`testsrc2=size=${o.width}x${o.height}:rate=${o.fps}:duration=${o.durationS}`)
      .inputFormat('lavfi')
      .input(`sine=frequency=${o.toneHz}:sample_rate=16000:duration=${o.durationS}`)
      .inputFormat('lavfi')
      .videoCodec('libx264')
      .audioCodec('aac')
      .outputOptions(['-preset ultrafast', '-threads 1', '-pix_fmt yuv420p', '-b:a 32k', '-fflags +bitexact', '-flags:v +bitexact', '-flags:a +bitexact', '-map_metadata -1', '-movflags +faststart'])
      .format('mp4');
    if (filters.length > 0) cmd.videoFilters(filters);
    cmd
      .on('error', (err: Error) => reject(new DockError('SIM_FFMPEG', `ffmpeg could not make a test clip at ${path}: ${err.message}`, { path }, { cause: err })))
      .on('end', () => resolve())
      .save(path);
  });
}

export interface ProbeResult {
  container: string; // ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  durationS: number;
  videoCodec: string | undefined;
  audioCodec: string | undefined;
  width: number | undefined;
  height: number | undefined;
}

/** Longest a probe may take: a clip that makes ffprobe hang must not hold the verify step. */
export const PROBE_TIMEOUT_MS = 30_000;

interface FfprobeJson {
  format?: { format_name?: string; duration?: string };
  streams?: { codec_type?: string; codec_name?: string; width?: number; height?: number }[];
}

/**
 * Runs ffprobe (the installer's binary) on a clip, killed after `timeoutMs`. Not through
 * fluent-ffmpeg's ffprobe(): it has no timeout and gives no handle on the process, so a
 * damaged or hostile clip (or a FIFO in its place) that ffprobe never finishes reading
 * would hold a verify slot for ever.
 */
export async function probe(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeResult> {
  const { default: ffprobePath } = await import('@ffprobe-installer/ffprobe');
  let data: FfprobeJson;
  try {
    const { stdout } = await execFileAsync(ffprobePath.path, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', '-i', path], {
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 16 * 1024 * 1024,
      encoding: 'utf8',
    });
    data = JSON.parse(stdout) as FfprobeJson;
  } catch (err) {
    const e = err as { killed?: boolean; stderr?: string; message: string };
    const why = e.killed ? `it did not finish within ${timeoutMs} ms and was stopped` : (e.stderr?.trim() || e.message).slice(0, 300);
    throw new DockError('SIM_FFMPEG', `ffprobe could not read ${path}: ${why}`, { path }, { cause: err });
  }
  const streams = data.streams ?? [];
  const video = streams.find((s) => s.codec_type === 'video');
  const audio = streams.find((s) => s.codec_type === 'audio');
  return {
    container: data.format?.format_name ?? 'unknown',
    durationS: Number(data.format?.duration ?? 0),
    videoCodec: video?.codec_name,
    audioCodec: audio?.codec_name,
    width: video?.width,
    height: video?.height,
  };
}
