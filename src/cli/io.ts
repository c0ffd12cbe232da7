import { lstatSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { QuantLensError } from '../core/errors';

/** What a command gets from the terminal: its arguments, output streams, and the SIGINT signal. */
export interface CliContext {
  args: string[];
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  signal: AbortSignal;
}

export type CliCommand = (ctx: CliContext) => Promise<void>;

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string[]>;
}

/**
 * Parses `--flag value`, `--flag=value`, boolean `--flag` (names in `booleans`) and `-o value` (aliases map).
 * Unknown flags are a USAGE error.
 */
export function parseArgs(
  argv: string[],
  spec: { values?: string[]; booleans?: string[]; aliases?: Record<string, string> },
): ParsedArgs {
  const values = new Set(spec.values ?? []);
  const booleans = new Set(spec.booleans ?? []);
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  const add = (k: string, v: string) => flags.set(k, [...(flags.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    if (!a.startsWith('--')) a = spec.aliases?.[a] ?? a;
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (booleans.has(name) && eq < 0) {
      add(name, 'true');
    } else if (values.has(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      // `--tensor --json` forgot the value; a value that really starts with -- can be given as --tensor=--x.
      const isFlag = eq < 0 && v !== undefined && v.startsWith('--') && (values.has(v.slice(2).split('=')[0]) || booleans.has(v.slice(2)));
      if (v === undefined || isFlag) throw new QuantLensError('USAGE', `--${name} needs a value`);
      add(name, v);
    } else {
      throw new QuantLensError('USAGE', `unknown option ${a}`);
    }
  }
  return { positional, flags };
}

export function flag(p: ParsedArgs, name: string): string | undefined {
  const v = p.flags.get(name);
  return v?.[v.length - 1];
}

export function hasFlag(p: ParsedArgs, name: string): boolean {
  return p.flags.has(name);
}

/** JSON with finite numbers only (NaN/±∞ → null) and bigint beyond 2^53 as strings. */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(
    value,
    (_k, v) => {
      if (typeof v === 'number') return Number.isFinite(v) ? v : null;
      if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
      return v;
    },
    indent,
  );
}

/** Whether something is at `path`, a dangling symlink included (existsSync follows links and would say no). */
export function pathTaken(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A checkpoint's file or folder name without its format's extension (`model.safetensors.index.json` → `model`), for naming outputs. */
export function checkpointStem(input: string): string {
  return basename(input).replace(/(\.safetensors\.index\.json|\.index\.json|\.safetensors|\.gguf|\.onnx|\.pt|\.pth|\.bin|\.jit)$/, '') || basename(input, extname(input));
}
