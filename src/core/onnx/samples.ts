/**
 * Calibration samples from the user's files, built against the model's input signature:
 * - .npy: the primary input's value (an extra leading axis: one sample per slice);
 * - .npz: values for inputs named by its entries (same rule), one sample per file;
 * - images (.png/.jpg/.jpeg): decoded, resized to the primary input's H × W, scaled, normalised
 *   ((v · scale − mean) / std per channel), in RGB or BGR order, NCHW or NHWC;
 * - .wav: mono audio at the model's rate, cut into windows of the primary input's length (every `audioHop` samples);
 * - synthetic: seeded standard-normal values, a weaker proxy than real data (say so to the user).
 * Every other input gets zeros (recurrent state) or a value from `values` (e.g. `sr=16000`; an
 * int64 scalar input named sr/sample_rate defaults to the audio's rate).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { FileByteSource } from '../bytesource';
import { QuantLensError, throwIfAborted } from '../errors';
import { MAX_CALIBRATION_FILE_BYTES, MAX_CALIBRATION_SAMPLES } from '../limits';
import { readEntryBytes, readZipDirectory } from '../zip';
import { decodeImage, parseNpy, parseWav, resizeBilinear, type Audio, type NpyArray } from './decode-inputs';
import { checkedCount, resolveDims, withBatchDefaults, zeroData, type FeedData, type InputSpec, type OnnxFeed, type Sample } from './feeds';

export interface ImageOptions {
  /** multiplies the 0…255 pixel values first (default 1/255) */
  scale: number;
  /** per channel, after scaling, in the model's channel order (default 0.5, 0.5, 0.5) */
  mean: number[];
  std: number[];
  channelOrder: 'rgb' | 'bgr';
  /** stretch to H × W, or keep the aspect ratio at height H and pad the right with zeros up to W (text-line models) */
  resize: 'stretch' | 'pad';
}

export const DEFAULT_IMAGE_OPTIONS: ImageOptions = { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], channelOrder: 'rgb', resize: 'stretch' };

export interface SampleOptions {
  /** symbolic dims by name (or `<input>:<axis>`) */
  dims?: ReadonlyMap<string, number>;
  /** values of scalar or small inputs by name, broadcast to their shape */
  values?: ReadonlyMap<string, number>;
  /** the input files feed (default: the first float input) */
  primaryInput?: string;
  image?: Partial<ImageOptions>;
  /** audio: the model's sample rate (default 16000; other rates are resampled linearly) and window length when the input's is symbolic (default 512) */
  sampleRate?: number;
  audioWindow?: number;
  /** audio: samples between window starts (default: the window; Silero VAD v5 takes 576-sample windows, 64 of context, every 512) */
  audioHop?: number;
  /** at most this many samples (default and cap: MAX_CALIBRATION_SAMPLES) */
  maxSamples?: number;
  signal?: AbortSignal;
  /** loadCalibrationSet: files read / files found */
  onProgress?: (done: number, total: number) => void;
}

export type SampleSource = 'npy' | 'npz' | 'images' | 'audio' | 'synthetic';

export interface CalibrationSet {
  samples: Sample[];
  /** the kinds of files the samples came from */
  sources: SampleSource[];
  /** true when the samples are synthetic: a weaker proxy for real data */
  synthetic: boolean;
  files: string[];
  /** inputs filled with zeros or constant values, for the report */
  filledInputs: string[];
}

const IMAGE_EXTS = new Set(['.png', '.jpg', '.jpeg']);
const KNOWN_EXTS = new Set(['.npy', '.npz', '.wav', ...IMAGE_EXTS]);

/** Files under `paths` (folders listed, sorted, non-recursive) with a known extension. */
export async function calibrationFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    let s;
    try {
      s = await stat(p);
    } catch (err) {
      throw new QuantLensError('IO', `cannot read ${p}: ${(err as Error).message}`, { file: p, cause: err });
    }
    if (s.isDirectory()) {
      const names = (await readdir(p)).filter((n) => KNOWN_EXTS.has(extname(n).toLowerCase())).sort();
      files.push(...names.map((n) => join(p, n)));
    } else {
      if (!KNOWN_EXTS.has(extname(p).toLowerCase())) throw new QuantLensError('USAGE', `${p}: calibration inputs are .npy, .npz, .png, .jpg or .wav files`);
      files.push(p);
    }
  }
  if (files.length === 0) throw new QuantLensError('USAGE', `no .npy, .npz, image or .wav files in ${paths.join(', ')}`);
  return files;
}

async function readWhole(file: string): Promise<Uint8Array> {
  const s = await stat(file);
  if (s.size > MAX_CALIBRATION_FILE_BYTES) throw new QuantLensError('LIMIT_EXCEEDED', `${file} is ${s.size} bytes (limit ${MAX_CALIBRATION_FILE_BYTES})`, { file });
  return new Uint8Array(await readFile(file));
}

function primaryOf(signature: readonly InputSpec[], options: SampleOptions): InputSpec {
  const wanted = options.primaryInput;
  const spec = wanted ? signature.find((s) => s.name === wanted) : signature.find((s) => s.type === 'float32');
  if (!spec) throw new QuantLensError('USAGE', wanted ? `the model has no input ${wanted}` : 'the model has no float input to calibrate');
  return spec;
}

/** A filled value for a non-primary input: a given constant, the audio rate for `sr`, or zeros. */
function filledFeed(spec: InputSpec, options: SampleOptions, audioRate: number | undefined): OnnxFeed {
  const dims = resolveDims(spec, options.dims ?? new Map());
  const n = checkedCount(dims, spec.name);
  const data = zeroData(spec.type, n);
  let value = options.values?.get(spec.name);
  if (value === undefined && audioRate !== undefined && /^(sr|sample_?rate)$/i.test(spec.name)) value = audioRate;
  if (value !== undefined) fillWith(data, value);
  return { name: spec.name, type: spec.type, dims, data };
}

function fillWith(data: FeedData, value: number): void {
  if (data instanceof BigInt64Array) data.fill(BigInt(Math.trunc(value)));
  else data.fill(value);
}

/** Splits an array into samples of `dims`: the array itself, or its slices along an extra leading axis. */
function slicesOf(array: NpyArray, spec: InputSpec, dims: number[], file: string): OnnxFeed[] {
  if (array.type !== spec.type) throw new QuantLensError('INVALID_DTYPE', `${file}: ${array.type} values for input ${spec.name} of ${spec.type}`, { file });
  const fits = (got: readonly number[]) => got.length === dims.length && got.every((d, i) => spec.dims[i] !== dims[i] || typeof spec.dims[i] !== 'number' || d === dims[i]);
  if (fits(array.dims)) return [{ name: spec.name, type: spec.type, dims: [...array.dims], data: array.data }];
  if (fits(array.dims.slice(1))) {
    const inner = array.dims.slice(1);
    const n = checkedCount(inner, file);
    const out: OnnxFeed[] = [];
    for (let k = 0; k < array.dims[0]!; k++) out.push({ name: spec.name, type: spec.type, dims: inner, data: array.data.slice(k * n, (k + 1) * n) as FeedData });
    return out;
  }
  throw new QuantLensError('INVALID_SHAPE', `${file}: shape [${array.dims.join(', ')}] does not fit input ${spec.name} [${spec.dims.map((d) => d ?? '?').join(', ')}]`, { file });
}

function imageFeed(file: string, bytes: Uint8Array, spec: InputSpec, dims: number[], opts: ImageOptions): OnnxFeed {
  if (spec.type !== 'float32' || dims.length !== 4) {
    throw new QuantLensError('USAGE', `images feed a float input of rank 4 (NCHW or NHWC); ${spec.name} is ${spec.type} [${dims.join(', ')}]`);
  }
  const nhwc = dims[3] === 3 && dims[1] !== 3;
  const [channels, height, width] = nhwc ? [dims[3]!, dims[1]!, dims[2]!] : [dims[1]!, dims[2]!, dims[3]!];
  if (channels !== 3 && channels !== 1) throw new QuantLensError('USAGE', `input ${spec.name} has ${channels} channels; images give 1 or 3`);
  const img = decodeImage(bytes, file);
  let resized;
  let validWidth = width;
  if (opts.resize === 'pad') {
    validWidth = Math.min(width, Math.max(1, Math.ceil((img.width * height) / img.height)));
    resized = resizeBilinear(img, validWidth, height);
  } else {
    resized = resizeBilinear(img, width, height);
  }
  const plane = height * width;
  const data = new Float32Array(dims[0]! * channels * plane);
  const order = opts.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  const rw = resized.width;
  for (let c = 0; c < channels; c++) {
    const mean = opts.mean[c] ?? opts.mean[0] ?? 0;
    const std = opts.std[c] ?? opts.std[0] ?? 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let v = 0; // padding is 0 after normalisation, as PaddleOCR pads
        if (x < validWidth) {
          const src =
            channels === 1
              ? (resized.rgb[y * rw + x]! * 0.299 + resized.rgb[plane + y * rw + x]! * 0.587 + resized.rgb[2 * plane + y * rw + x]! * 0.114)
              : resized.rgb[order[c]! * resized.width * resized.height + y * rw + x]!;
          v = (src * opts.scale - mean) / std;
        }
        if (nhwc) data[(y * width + x) * channels + c] = v;
        else data[c * plane + y * width + x] = v;
      }
    }
  }
  // batch > 1: the image repeated (calibration treats each file as one sample)
  for (let b = 1; b < dims[0]!; b++) data.copyWithin(b * channels * plane, 0, channels * plane);
  return { name: spec.name, type: 'float32', dims, data };
}

function resample(audio: Audio, rate: number): Float32Array {
  if (audio.sampleRate === rate) return audio.samples;
  const n = Math.floor((audio.samples.length * rate) / audio.sampleRate);
  const out = new Float32Array(n);
  const step = audio.sampleRate / rate;
  for (let i = 0; i < n; i++) {
    const f = i * step;
    const i0 = Math.floor(f);
    const i1 = Math.min(i0 + 1, audio.samples.length - 1);
    out[i] = audio.samples[i0]! * (1 - (f - i0)) + audio.samples[i1]! * (f - i0);
  }
  return out;
}

function audioFeeds(samples: Float32Array, spec: InputSpec, options: SampleOptions): OnnxFeed[] {
  if (spec.type !== 'float32' || spec.dims.length < 1 || spec.dims.length > 2) {
    throw new QuantLensError('USAGE', `audio feeds a float input [batch, samples] or [samples]; ${spec.name} is ${spec.type} [${spec.dims.join(', ')}]`);
  }
  const axis = spec.dims.length - 1;
  const given = spec.dims[axis];
  const symbolic = typeof given !== 'number';
  const dimsMap = new Map(options.dims ?? []);
  if (symbolic && !dimsMap.has(given ?? `${spec.name}:${axis}`)) dimsMap.set(given ?? `${spec.name}:${axis}`, options.audioWindow ?? 512);
  const dims = resolveDims(spec, dimsMap);
  const window = dims[axis]!;
  const hop = options.audioHop ?? window;
  if (!(window > 0) || !(hop > 0)) throw new QuantLensError('USAGE', `audio windows of ${window} samples every ${hop}`);
  const out: OnnxFeed[] = [];
  for (let at = 0; at + window <= samples.length; at += hop) {
    out.push({ name: spec.name, type: 'float32', dims, data: samples.slice(at, at + window) });
  }
  return out;
}

/** Seeded standard-normal values (xorshift32 + Box–Muller). */
function normalValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** `count` synthetic samples: every float input standard-normal, other inputs filled as usual. A weaker proxy than real data. */
export function syntheticSamples(signature: readonly InputSpec[], count: number, given: SampleOptions = {}, seed = 1): CalibrationSet {
  const options = { ...given, dims: withBatchDefaults(signature, given.dims ?? new Map()) };
  const primary = primaryOf(signature, options);
  const samples: Sample[] = [];
  const filled = new Set<string>();
  for (let k = 0; k < Math.min(count, MAX_CALIBRATION_SAMPLES); k++) {
    samples.push(
      signature.map((spec) => {
        if (spec !== primary) {
          filled.add(spec.name);
          return filledFeed(spec, options, options.sampleRate);
        }
        const dims = resolveDims(spec, options.dims ?? new Map());
        return { name: spec.name, type: 'float32', dims, data: normalValues(checkedCount(dims, spec.name), seed + k) };
      }),
    );
  }
  return { samples, sources: ['synthetic'], synthetic: true, files: [], filledInputs: [...filled] };
}

/** Samples from files and folders (see the file comment). */
export async function loadCalibrationSet(signature: readonly InputSpec[], paths: readonly string[], given: SampleOptions = {}): Promise<CalibrationSet> {
  const options = { ...given, dims: withBatchDefaults(signature, given.dims ?? new Map()) };
  const files = await calibrationFiles(paths);
  const primary = primaryOf(signature, options);
  const maxSamples = Math.min(options.maxSamples ?? MAX_CALIBRATION_SAMPLES, MAX_CALIBRATION_SAMPLES);
  const imageOptions: ImageOptions = { ...DEFAULT_IMAGE_OPTIONS, ...options.image };
  const rate = options.sampleRate ?? 16000;
  const dimsMap = options.dims ?? new Map<string, number>();
  const samples: Sample[] = [];
  const sources = new Set<SampleSource>();
  const filled = new Set<string>();
  const complete = (given: OnnxFeed[], audioRate: number | undefined): Sample =>
    signature.map((spec) => {
      const g = given.find((f) => f.name === spec.name);
      if (g) return g;
      filled.add(spec.name);
      return filledFeed(spec, options, audioRate);
    });
  for (const [index, file] of files.entries()) {
    throwIfAborted(options.signal);
    options.onProgress?.(index, files.length);
    if (samples.length >= maxSamples) break;
    const ext = extname(file).toLowerCase();
    if (ext === '.npy') {
      sources.add('npy');
      const array = parseNpy(await readWhole(file), file);
      for (const feed of slicesOf(array, primary, resolveDims(primary, dimsMap), file)) samples.push(complete([feed], undefined));
    } else if (ext === '.npz') {
      sources.add('npz');
      const src = await FileByteSource.open(file);
      try {
        const zip = await readZipDirectory(src);
        const perInput: OnnxFeed[][] = [];
        for (const spec of signature) {
          const entry = zip.byName.get(`${spec.name}.npy`);
          if (!entry) continue;
          const array = parseNpy(await readEntryBytes(src, entry, MAX_CALIBRATION_FILE_BYTES), `${file}:${entry.name}`);
          perInput.push(slicesOf(array, spec, resolveDims(spec, dimsMap), `${file}:${entry.name}`));
        }
        if (perInput.length === 0) throw new QuantLensError('USAGE', `${file} has no entry named after an input (${signature.map((s) => `${s.name}.npy`).join(', ')})`);
        const count = perInput[0]!.length;
        if (perInput.some((p) => p.length !== count)) throw new QuantLensError('INVALID_SHAPE', `${file}: entries hold different numbers of samples`, { file });
        for (let k = 0; k < count; k++) samples.push(complete(perInput.map((p) => p[k]!), undefined));
      } finally {
        await src.close();
      }
    } else if (IMAGE_EXTS.has(ext)) {
      sources.add('images');
      samples.push(complete([imageFeed(file, await readWhole(file), primary, resolveDims(primary, dimsMap), imageOptions)], undefined));
    } else {
      sources.add('audio');
      const audio = parseWav(await readWhole(file), file);
      for (const feed of audioFeeds(resample(audio, rate), primary, options)) {
        if (samples.length >= maxSamples) break;
        samples.push(complete([feed], rate));
      }
    }
  }
  options.onProgress?.(files.length, files.length);
  if (samples.length === 0) throw new QuantLensError('USAGE', `no calibration samples in ${paths.join(', ')} (audio shorter than one window?)`);
  return { samples: samples.slice(0, maxSamples), sources: [...sources], synthetic: false, files, filledInputs: [...filled] };
}
