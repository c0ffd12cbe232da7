/** Number formatting shared by the inspector's views. */

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatCount(n: number): string {
  return integer.format(n);
}

/** Bytes with the decimal unit, and the binary one beside it when they differ visibly (GB = 10^9, GiB = 2^30). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const dec = scaled(bytes, 1000, ['kB', 'MB', 'GB', 'TB']);
  const bin = scaled(bytes, 1024, ['KiB', 'MiB', 'GiB', 'TiB']);
  return `${dec} (${bin})`;
}

/** Bytes in the decimal unit only (table cells). */
export function formatBytesShort(bytes: number): string {
  return bytes < 1000 ? `${bytes} B` : scaled(bytes, 1000, ['kB', 'MB', 'GB', 'TB']);
}

function scaled(n: number, base: number, units: string[]): string {
  let v = n / base;
  let i = 0;
  while (v >= base && i < units.length - 1) {
    v /= base;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function formatParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function formatBpw(bpw: number | null): string {
  return bpw === null ? '–' : bpw.toFixed(2);
}

/** A statistic: 4 significant digits, exponent form for very large or small magnitudes. */
export function formatStat(x: number | null | undefined): string {
  if (x === null || x === undefined) return '';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
}

export function formatShape(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}
