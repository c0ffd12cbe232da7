/**
 * Decoders for calibration files: .npy arrays (numpy's format, versions 1–3, little-endian, C
 * order), PNG and JPEG images (pngjs, jpeg-js) to RGB floats, and RIFF WAVE audio to mono floats.
 * Every size comes from an untrusted header and is checked before anything is allocated.
 */
import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { QuantLensError } from '../errors';
import { MAX_IMAGE_PIXELS } from '../limits';
import { checkedCount, type FeedData, type FeedType } from './feeds';

export interface NpyArray {
  type: FeedType;
  dims: number[];
  data: FeedData;
}

const NPY_TYPES: Record<string, { type: FeedType; width: number; make: (b: ArrayBuffer, n: number) => FeedData }> = {
  '<f4': { type: 'float32', width: 4, make: (b, n) => new Float32Array(b, 0, n) },
  '<f8': { type: 'float64', width: 8, make: (b, n) => new Float64Array(b, 0, n) },
  '<i8': { type: 'int64', width: 8, make: (b, n) => new BigInt64Array(b, 0, n) },
  '<i4': { type: 'int32', width: 4, make: (b, n) => new Int32Array(b, 0, n) },
  '<i2': { type: 'int16', width: 2, make: (b, n) => new Int16Array(b, 0, n) },
  '<u2': { type: 'uint16', width: 2, make: (b, n) => new Uint16Array(b, 0, n) },
  '|i1': { type: 'int8', width: 1, make: (b, n) => new Int8Array(b, 0, n) },
  '|u1': { type: 'uint8', width: 1, make: (b, n) => new Uint8Array(b, 0, n) },
  '|b1': { type: 'bool', width: 1, make: (b, n) => new Uint8Array(b, 0, n) },
};

/** Parses a .npy file. https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const bad = (why: string) => new QuantLensError('INVALID_HEADER', `${file}: ${why}`, { file });
  if (bytes.length < 10 || bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== 'NUMPY') throw bad('not a .npy file');
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new QuantLensError('UNSUPPORTED_VERSION', `${file}: .npy version ${major}`, { file });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerStart = major === 1 ? 10 : 12;
  if (bytes.length < headerStart) throw bad('truncated header');
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (headerStart + headerLen > bytes.length) throw new QuantLensError('TRUNCATED', `${file}: header runs past the end`, { file });
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad(`bad header ${JSON.stringify(header.slice(0, 200))}`);
  if (fortran === 'True') throw new QuantLensError('UNSUPPORTED', `${file}: Fortran-order arrays are not supported`, { file });
  const kind = NPY_TYPES[descr === '<f4' || descr === '=f4' ? '<f4' : descr.replace(/^=/, '<')];
  if (!kind) throw new QuantLensError('UNSUPPORTED', `${file}: dtype ${descr} is not supported`, { file });
  const dims = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const n = checkedCount(dims, file);
  const start = headerStart + headerLen;
  if (start + n * kind.width > bytes.length) throw new QuantLensError('TRUNCATED', `${file}: data needs ${n * kind.width} bytes`, { file });
  const body = bytes.slice(start, start + n * kind.width); // a copy: aligned, and owned by the sample
  return { type: kind.type, dims, data: kind.make(body.buffer, n) };
}

/** An image as planar RGB floats in [0, 255], [3][height][width]. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Float32Array;
}

function checkPixels(width: number, height: number, file: string): void {
  if (!(width > 0 && height > 0) || width * height > MAX_IMAGE_PIXELS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${file}: image of ${width} × ${height} pixels (limit ${MAX_IMAGE_PIXELS})`, { file });
  }
}

/** Decodes a PNG or JPEG (by magic bytes); alpha is dropped, grey is replicated. */
export function decodeImage(bytes: Uint8Array, file: string): RgbImage {
  let width: number;
  let height: number;
  let rgba: Uint8Array;
  const isPng = bytes.length >= 24 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  try {
    if (isPng) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      checkPixels(view.getUint32(16), view.getUint32(20), file); // IHDR, before pngjs allocates
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)); // pngjs reads through Buffer methods
      ({ width, height } = png);
      rgba = png.data;
    } else if (isJpeg) {
      const jpeg = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6, maxMemoryUsageInMB: 1024 });
      ({ width, height } = jpeg);
      rgba = jpeg.data;
    } else {
      throw new QuantLensError('UNKNOWN_FORMAT', `${file}: not a PNG or JPEG image`, { file });
    }
  } catch (err) {
    if (err instanceof QuantLensError) throw err;
    throw new QuantLensError('INVALID_HEADER', `${file}: cannot decode the image: ${(err as Error).message}`, { file, cause: err });
  }
  checkPixels(width, height, file);
  const plane = width * height;
  const rgb = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    rgb[p] = rgba[4 * p]!;
    rgb[plane + p] = rgba[4 * p + 1]!;
    rgb[2 * plane + p] = rgba[4 * p + 2]!;
  }
  return { width, height, rgb };
}

/** Bilinear resampling of a planar image (pixel centres aligned, as OpenCV's INTER_LINEAR). */
export function resizeBilinear(img: RgbImage, width: number, height: number): RgbImage {
  const out = new Float32Array(3 * width * height);
  const sx = img.width / width;
  const sy = img.height / height;
  const plane = img.width * img.height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), img.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), img.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, img.width - 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const base = c * plane;
        const top = img.rgb[base + y0 * img.width + x0]! * (1 - wx) + img.rgb[base + y0 * img.width + x1]! * wx;
        const bottom = img.rgb[base + y1 * img.width + x0]! * (1 - wx) + img.rgb[base + y1 * img.width + x1]! * wx;
        out[c * width * height + y * width + x] = top * (1 - wy) + bottom * wy;
      }
    }
  }
  return { width, height, rgb: out };
}

export interface Audio {
  sampleRate: number;
  /** mono samples in [-1, 1] (channels averaged) */
  samples: Float32Array;
}

/** Parses RIFF WAVE: PCM 8/16/24/32-bit or IEEE float 32/64, any channel count (averaged to mono). */
export function parseWav(bytes: Uint8Array, file: string): Audio {
  const bad = (why: string) => new QuantLensError('INVALID_HEADER', `${file}: ${why}`, { file });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw bad('not a RIFF WAVE file');
  let fmt: { format: number; channels: number; rate: number; bits: number } | undefined;
  let data: Uint8Array | undefined;
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    const end = Math.min(body + size, bytes.length); // a truncated last chunk (streamed writers) is read as far as it goes
    if (id === 'fmt ') {
      if (size < 16) throw bad('fmt chunk too short');
      let format = view.getUint16(body, true);
      if (format === 0xfffe && size >= 40) format = view.getUint16(body + 24, true); // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
      fmt = { format, channels: view.getUint16(body + 2, true), rate: view.getUint32(body + 4, true), bits: view.getUint16(body + 14, true) };
    } else if (id === 'data') {
      data = bytes.subarray(body, end);
    }
    at = body + size + (size & 1);
  }
  if (!fmt || !data) throw bad('no fmt or data chunk');
  const { format, channels, rate, bits } = fmt;
  if (channels < 1 || rate < 1) throw bad(`${channels} channels at ${rate} Hz`);
  const width = bits / 8;
  const supported = (format === 1 && [8, 16, 24, 32].includes(bits)) || (format === 3 && (bits === 32 || bits === 64));
  if (!supported) throw new QuantLensError('UNSUPPORTED', `${file}: WAVE format ${format} with ${bits}-bit samples is not supported`, { file });
  const frames = Math.floor(data.length / (width * channels));
  const samples = new Float32Array(frames);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) {
      const at = (f * channels + c) * width;
      let v: number;
      if (format === 3) v = bits === 32 ? dv.getFloat32(at, true) : dv.getFloat64(at, true);
      else if (bits === 8) v = (dv.getUint8(at) - 128) / 128;
      else if (bits === 16) v = dv.getInt16(at, true) / 32768;
      else if (bits === 24) v = ((dv.getUint8(at) | (dv.getUint8(at + 1) << 8) | (dv.getInt8(at + 2) << 16)) as number) / 8388608;
      else v = dv.getInt32(at, true) / 2147483648;
      sum += v;
    }
    samples[f] = sum / channels;
  }
  return { sampleRate: rate, samples };
}
