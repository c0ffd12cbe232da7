/**
 * The Quantize command's decisions, without VS Code: the choices offered, the default output path,
 * what a plan means for the GGUF writer, and how a failure is told. src/extension/quantize/command.ts
 * drives them through the UI.
 */
import { existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { defaultOutputPath } from '../../cli/commands/quantize';
import { defaultSafetensorsOutput } from '../../cli/commands/quantize-safetensors';
import { isDType, type DType } from '../../core/dtypes';
import { QuantLensError } from '../../core/errors';
import { llamaQuantizeRecipe } from '../../core/plan/export';
import type { Plan } from '../../core/plan/plan';
import { formatScheme, parseScheme } from '../../core/quant/scheme';

/** What to quantize to: a llama.cpp preset or GGUF type, an RTN scheme (safetensors), or a plan. */
export type QuantizeChoice = { kind: 'gguf'; type: string } | { kind: 'safetensors'; scheme: string } | { kind: 'plan'; plan: Plan };

/** llama.cpp presets offered first (llama-quantize's usual picks), then plain types. */
export const GGUF_PRESETS: ReadonlyArray<{ type: string; detail: string }> = [
  { type: 'Q4_K_M', detail: 'llama.cpp’s usual pick: 4-bit K-quant, sensitive tensors at 6 bits' },
  { type: 'Q5_K_M', detail: '5-bit K-quant mix' },
  { type: 'Q6_K', detail: '6-bit K-quant' },
  { type: 'Q8_0', detail: '8-bit, nearly lossless' },
  { type: 'Q4_K_S', detail: '4-bit K-quant, smaller mix' },
  { type: 'Q5_K_S', detail: '5-bit K-quant, smaller mix' },
  { type: 'Q3_K_M', detail: '3-bit K-quant mix' },
  { type: 'Q3_K_L', detail: '3-bit K-quant, larger mix' },
  { type: 'Q2_K', detail: '2-bit K-quant' },
  { type: 'IQ4_XS', detail: '4.25-bit non-linear' },
  { type: 'IQ4_NL', detail: '4.5-bit non-linear, blocks of 32' },
  { type: 'Q4_0', detail: 'legacy 4-bit' },
  { type: 'Q4_1', detail: 'legacy 4-bit with offset' },
  { type: 'Q5_0', detail: 'legacy 5-bit' },
  { type: 'Q5_1', detail: 'legacy 5-bit with offset' },
  { type: 'F16', detail: 'half precision' },
  { type: 'BF16', detail: 'bfloat16' },
];

export const SAFETENSORS_SCHEMES: ReadonlyArray<{ scheme: string; detail: string }> = [
  { scheme: 'int4-g128-sym', detail: 'compressed-tensors pack-quantized (vLLM)' },
  { scheme: 'int4-g128-asym', detail: 'compressed-tensors pack-quantized with zero points' },
  { scheme: 'int8-ch-sym', detail: 'compressed-tensors, per-channel 8-bit' },
  { scheme: 'fp8-e4m3', detail: 'compressed-tensors float-quantized' },
  { scheme: 'nf4-g64', detail: 'bitsandbytes NF4 (transformers load_in_4bit)' },
];

/** A checkpoint's file name without its format's extension (`model.safetensors.index.json` → `model`). */
export function checkpointStem(path: string): string {
  return basename(path).replace(/(\.safetensors\.index\.json|\.index\.json|\.safetensors|\.gguf|\.onnx|\.pt|\.pth|\.bin|\.jit)$/, '');
}

/** Whether a choice writes a safetensors folder (else one GGUF file). */
export function writesSafetensors(choice: QuantizeChoice): boolean {
  return choice.kind === 'safetensors' || (choice.kind === 'plan' && choice.plan.target === 'safetensors');
}

/** The choice as the progress title names it. */
export function choiceLabel(choice: QuantizeChoice): string {
  return choice.kind === 'gguf' ? choice.type : choice.kind === 'safetensors' ? choice.scheme : 'the plan';
}

/**
 * The default output: next to the input, named after the choice, never an existing path (-2, -3, …
 * appended). `exists` is the file system's answer (a parameter, so tests need no files).
 */
export function defaultOutputFor(input: string, choice: QuantizeChoice, exists: (path: string) => boolean = existsSync): string {
  const planName = `${checkpointStem(input)}-mixed`;
  const base =
    choice.kind === 'gguf'
      ? defaultOutputPath(input, choice.type.toUpperCase())
      : choice.kind === 'safetensors'
        ? defaultSafetensorsOutput(input, formatScheme(parseScheme(choice.scheme)))
        : choice.plan.target === 'gguf'
          ? `${dirname(input)}/${planName}.gguf`
          : `${dirname(input)}/${planName}`;
  if (!exists(base)) return base;
  const m = /^(.*?)(\.gguf)?$/.exec(base)!;
  for (let i = 2; ; i++) {
    const candidate = `${m[1]}-${i}${m[2] ?? ''}`;
    if (!exists(candidate)) return candidate;
  }
}

/** Why an output path typed by the user cannot be used, or undefined when it can. */
export function outputProblem(value: string, input: string, exists: (path: string) => boolean = existsSync): string | undefined {
  if (!value.trim()) return 'Give an output path.';
  if (value === input) return 'The output cannot be the input.';
  if (exists(value)) return `${basename(value)} exists; QuantLens never overwrites.`;
  if (!exists(dirname(value))) return `The folder ${dirname(value)} does not exist.`;
  return undefined;
}

/** What the GGUF writer takes besides the input: the base type and per-tensor overrides. */
export interface GgufTypeChoice {
  type: string;
  tensorTypes?: Array<{ pattern: RegExp; type: DType }>;
  outputTensorType?: DType;
  tokenEmbeddingType?: DType;
}

/** A plan carried out as its exported llama-quantize recipe: the same patterns, the same base type. */
export function ggufTypesOfPlan(plan: Plan): GgufTypeChoice {
  const recipe = llamaQuantizeRecipe(plan);
  const dtype = (t: string): DType => {
    const upper = t.toUpperCase();
    if (!isDType(upper)) throw new QuantLensError('UNSUPPORTED', `unknown type ${t} in the plan`);
    return upper;
  };
  const flagValue = (name: string): DType | undefined => {
    const i = recipe.args.indexOf(name);
    return i >= 0 ? dtype(recipe.args[i + 1]) : undefined;
  };
  return {
    type: recipe.baseType,
    tensorTypes: recipe.tensorTypeFile
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => ({ pattern: new RegExp(l.slice(0, l.lastIndexOf('='))), type: dtype(l.slice(l.lastIndexOf('=') + 1)) })),
    outputTensorType: flagValue('--output-tensor-type'),
    tokenEmbeddingType: flagValue('--token-embedding-type'),
  };
}

/**
 * A failure as the error toast says it: the reason first (a collapsed toast shows one line), the
 * output folder by its base name (full paths push the reason out; the log has them).
 */
export function quantizeFailureText(message: string, input: string, output: string): string {
  const folder = dirname(output);
  const short = message.split(`${folder}/`).join('').split(folder).join(`“${basename(folder)}”`);
  const write = /^cannot write ([^:]+): (.+)$/s.exec(short);
  return write ? `${write[2]}: ${basename(input)} was not quantized (cannot write ${write[1]})` : `${basename(input)} was not quantized: ${short}`;
}
