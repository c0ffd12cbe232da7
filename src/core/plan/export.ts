/**
 * A plan written out for the tools that carry it out: our plan JSON, llama-quantize arguments
 * (and its `--tensor-type-file`), and a compressed-tensors `quantization_config`.
 */
import { QuantLensError } from '../errors';
import { describeTensor } from '../names';
import { ftypeForType } from '../quantize/llama-presets';
import { parseScheme } from '../quant/scheme';
import type { Plan } from './plan';

/** The plan JSON: `{ budget, assignment, bitsPerWeight, bytes, estimatedError, gap, frontier, … }`. */
export function planToJson(plan: Plan): Record<string, unknown> {
  return {
    budget: plan.budget,
    assignment: plan.assignment,
    bitsPerWeight: plan.bitsPerWeight,
    bytes: plan.bytes,
    estimatedError: plan.estimatedError,
    gap: plan.gap,
    frontier: plan.frontier.map((f) => ({ bitsPerWeight: f.bitsPerWeight, error: f.error })),
    uniform: plan.uniform.map((u) => ({ format: u.format, bitsPerWeight: u.bitsPerWeight, error: u.error })),
    target: plan.target,
    mode: plan.mode,
    errorUnit: plan.errorUnit,
    lowerBound: plan.lowerBound,
    params: plan.params,
    kept: plan.kept,
    warnings: plan.warnings,
  };
}

/** ECMAScript regex escaping (llama.cpp compiles patterns with std::regex, ECMAScript grammar). */
export function escapeRegex(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

const LAYER = /^blk\.(\d+)\.(.+)$/;

/**
 * Anchored patterns covering exactly `names` (llama.cpp names): one pattern per tensor kind, the
 * layers as an alternation, e.g. `^blk\.(?:0|3|7)\.ffn_down\.weight$`.
 */
export function anchoredPatterns(names: readonly string[]): string[] {
  const byKind = new Map<string, number[]>();
  const single: string[] = [];
  for (const n of names) {
    const m = LAYER.exec(n);
    if (!m) {
      single.push(`^${escapeRegex(n)}$`);
      continue;
    }
    const list = byKind.get(m[2]) ?? [];
    list.push(Number(m[1]));
    byKind.set(m[2], list);
  }
  const grouped = [...byKind.entries()].map(([kind, layers]) => {
    const sorted = [...new Set(layers)].sort((a, b) => a - b);
    const alt = sorted.length === 1 ? String(sorted[0]) : `(?:${sorted.join('|')})`;
    return `^blk\\.${alt}\\.${escapeRegex(kind)}$`;
  });
  return [...single, ...grouped];
}

export interface LlamaQuantizeRecipe {
  /** The preset given as llama-quantize's type argument. */
  baseType: string;
  /** Arguments between `llama-quantize` and the input file, with `--tensor-type` patterns inline. */
  args: string[];
  /** The same overrides as a `--tensor-type-file`: one `regex=type` per line, no comments. */
  tensorTypeFile: string;
  /** Arguments using the file instead of inline patterns (`<file>` stands for its path). */
  argsWithFile: string[];
  /** What follows the options: input, output, preset. */
  positional: string[];
  /** A shell command line, for display. */
  command: string;
}

/** The llama.cpp name of a tensor (GGUF files from a Hugging Face checkpoint are converted to these). */
function ggufName(name: string): string {
  return describeTensor(name).canonical ?? name;
}

/**
 * llama-quantize arguments carrying out a GGUF plan. Every planned tensor matches one `--tensor-type`
 * pattern, so the preset's own mix never changes a choice (llama-quant.cpp applies a matching pattern
 * as is and skips the mix); the output and token embedding take their dedicated flags. Tensors the
 * plan keeps but llama-quantize would quantize (2-D, excluded or with rows no format fits) are pinned
 * to their kept type.
 */
export function llamaQuantizeRecipe(plan: Plan, files: { input?: string; output?: string; imatrix?: string } = {}): LlamaQuantizeRecipe {
  if (plan.target !== 'gguf') throw new QuantLensError('USAGE', 'llama-quantize arguments need a plan for a GGUF target');
  const byType = new Map<string, string[]>();
  let outputType: string | undefined;
  let embeddingType: string | undefined;
  const add = (type: string, name: string) => byType.set(type, [...(byType.get(type) ?? []), name]);
  const paramsByType = new Map<string, number>();
  for (const t of plan.tensors) {
    const g = ggufName(t.name);
    let type = t.format;
    if (type === null) {
      // llama-quantize leaves 1-D tensors and norms alone; pin only kept tensors it would otherwise quantize.
      if (t.shape.length < 2 || !g.endsWith('weight') || g.includes('_norm.') || t.role === 'norm') continue;
      const dtype = plan.kept[t.name];
      type = dtype === 'F32' || dtype === 'BF16' ? dtype : 'F16';
    } else {
      paramsByType.set(type, (paramsByType.get(type) ?? 0) + t.params);
    }
    if (g === 'output.weight') outputType = type;
    else if (g === 'token_embd.weight') embeddingType = type;
    else add(type, g);
  }
  const base = [...paramsByType.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'Q8_0';
  const baseType = ftypeForType(base) ?? base;
  const lines: string[] = [];
  for (const [type, names] of [...byType.entries()].sort()) for (const p of anchoredPatterns(names)) lines.push(`${p}=${type}`);
  const common: string[] = [];
  if (files.imatrix) common.push('--imatrix', files.imatrix);
  if (outputType) common.push('--output-tensor-type', outputType);
  if (embeddingType) common.push('--token-embedding-type', embeddingType);
  const args = [...common, ...lines.flatMap((l) => ['--tensor-type', l])];
  const argsWithFile = [...common, '--tensor-type-file', '<file>'];
  const positional = [files.input ?? 'model-f16.gguf', files.output ?? 'model-mixed.gguf', baseType];
  return {
    baseType,
    args,
    tensorTypeFile: lines.length ? `${lines.join('\n')}\n` : '',
    argsWithFile,
    positional,
    command: shellCommand(['llama-quantize', ...args, ...positional]),
  };
}

/** A command line for a POSIX shell, quoting what needs it. */
export function shellCommand(words: readonly string[]): string {
  return words.map((s) => (/^[A-Za-z0-9_./=:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The compressed-tensors module name of a weight: the tensor name without `.weight`. */
function moduleName(name: string): string {
  return name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
}

function weightsArgs(name: string): { args: Record<string, unknown>; format: string } {
  const s = parseScheme(name);
  if (s.kind === 'nf4') {
    throw new QuantLensError('UNSUPPORTED', `${name}: compressed-tensors has no NF4 form (NF4 is written in the bitsandbytes layout); plan without nf4 to export compressed-tensors`);
  }
  const args: Record<string, unknown> = {
    num_bits: s.kind === 'int' ? s.bits : 8,
    type: s.kind === 'fp8' ? 'float' : 'int',
    symmetric: s.kind === 'fp8' || s.symmetric,
    strategy: s.granularity.kind,
    group_size: s.granularity.kind === 'group' ? s.granularity.size : null,
    dynamic: false,
    actorder: null,
    observer: s.mse ? 'mse' : 'minmax',
  };
  return { args, format: s.kind === 'fp8' ? 'float-quantized' : 'pack-quantized' };
}

/**
 * A compressed-tensors `quantization_config` for a safetensors plan: one config group per scheme
 * whose targets are the module names as anchored `re:` patterns; kept 2-D weights are ignored.
 */
export function compressedTensorsConfig(plan: Plan): Record<string, unknown> {
  if (plan.target !== 'safetensors') throw new QuantLensError('USAGE', 'a compressed-tensors config needs a plan for a safetensors target');
  const byScheme = new Map<string, string[]>();
  for (const [name, scheme] of Object.entries(plan.assignment)) byScheme.set(scheme, [...(byScheme.get(scheme) ?? []), moduleName(name)]);
  const groups: Record<string, unknown> = {};
  const formats = new Set<string>();
  [...byScheme.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .forEach(([scheme, modules], i) => {
      const { args, format } = weightsArgs(scheme);
      formats.add(format);
      groups[`group_${i}`] = {
        targets: modules.sort().map((m) => `re:^${escapeRegex(m)}$`),
        weights: args,
        input_activations: null,
        output_activations: null,
        format,
      };
    });
  const ignore = plan.tensors
    .filter((t) => t.format === null && t.shape.length >= 2 && t.name.endsWith('.weight') && t.role !== 'norm' && t.role !== 'embed')
    .map((t) => moduleName(t.name))
    .sort();
  return {
    quant_method: 'compressed-tensors',
    format: formats.size === 1 ? [...formats][0] : 'mixed-precision',
    quantization_status: 'compressed',
    config_groups: groups,
    ignore,
    kv_cache_scheme: null,
  };
}
