import * as vscode from 'vscode';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { defaultOutputPath } from '../../cli/commands/quantize';
import { defaultSafetensorsOutput } from '../../cli/commands/quantize-safetensors';
import { isDType, type DType } from '../../core/dtypes';
import { toQuantLensError } from '../../core/errors';
import { importanceFor, readImportanceMatrix } from '../../core/imatrix';
import { llamaQuantizeRecipe } from '../../core/plan/export';
import type { Plan } from '../../core/plan/plan';
import { formatScheme, parseScheme } from '../../core/quant/scheme';
import { quantizeToGguf } from '../../core/quantize/to-gguf';
import { quantizeToSafetensors } from '../../core/quantize/to-safetensors';
import { poolTensorEncoder } from '../../kernel/pool-encoder';
import { poolRtnQuantizer } from '../../kernel/rtn-job';
import type { LazyKernelPool } from '../kernel-pool';
import type { SensitivityService } from '../sensitivity/service';

/** What to quantize to: a llama.cpp preset or GGUF type, an RTN scheme (safetensors), or a plan. */
export type QuantizeChoice = { kind: 'gguf'; type: string } | { kind: 'safetensors'; scheme: string } | { kind: 'plan'; plan: Plan };

/** llama.cpp presets offered first (llama-quantize's usual picks), then plain types. */
const GGUF_PRESETS: Array<{ type: string; detail: string }> = [
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
const SAFETENSORS_SCHEMES: Array<{ scheme: string; detail: string }> = [
  { scheme: 'int4-g128-sym', detail: 'compressed-tensors pack-quantized (vLLM)' },
  { scheme: 'int4-g128-asym', detail: 'compressed-tensors pack-quantized with zero points' },
  { scheme: 'int8-ch-sym', detail: 'compressed-tensors, per-channel 8-bit' },
  { scheme: 'fp8-e4m3', detail: 'compressed-tensors float-quantized' },
  { scheme: 'nf4-g64', detail: 'bitsandbytes NF4 (transformers load_in_4bit)' },
];

export interface QuantizeOutcome {
  input: vscode.Uri;
  /** The written file or folder (split GGUF: the first file). */
  output: vscode.Uri;
  summary: string;
}

function stemOf(path: string): string {
  return basename(path).replace(/(\.safetensors\.index\.json|\.index\.json|\.safetensors|\.gguf|\.onnx|\.pt|\.pth|\.bin|\.jit)$/, '');
}

/** The default output: next to the input, named after the choice, never an existing path (-2, -3, … appended). */
export function defaultOutputFor(input: string, choice: QuantizeChoice): string {
  const planName = `${stemOf(input)}-mixed`;
  const base =
    choice.kind === 'gguf'
      ? defaultOutputPath(input, choice.type.toUpperCase())
      : choice.kind === 'safetensors'
        ? defaultSafetensorsOutput(input, formatScheme(parseScheme(choice.scheme)))
        : choice.plan.target === 'gguf'
          ? `${dirname(input)}/${planName}.gguf`
          : `${dirname(input)}/${planName}`;
  if (!existsSync(base)) return base;
  const m = /^(.*?)(\.gguf)?$/.exec(base)!;
  for (let i = 2; ; i++) {
    const candidate = `${m[1]}-${i}${m[2] ?? ''}`;
    if (!existsSync(candidate)) return candidate;
  }
}

/**
 * *QuantLens: Quantize…*: the choice (quick pick), the output path (input box, default next to the
 * input), then a cancellable progress notification; Open / Compare with Original / Reveal in Explorer
 * at the end. A failure (read-only folder, no space, unsupported type) is shown as the error it is.
 */
export class QuantizeCommand {
  constructor(
    private readonly pool: LazyKernelPool,
    private readonly sensitivity: SensitivityService,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  async run(input: vscode.Uri, preset?: QuantizeChoice): Promise<QuantizeOutcome | undefined> {
    if (input.scheme !== 'file') {
      void vscode.window.showErrorMessage(`QuantLens: Quantize reads and writes local files; ${input.toString()} is not one.`);
      return undefined;
    }
    const analysis = this.sensitivity.analysisOf(input);
    const choice = preset ?? (await this.pick(input, analysis.plan, analysis.imatrixPath));
    if (!choice) return undefined;
    const output = await vscode.window.showInputBox({
      title: `Quantize ${basename(input.fsPath)}: output ${choice.kind === 'safetensors' || (choice.kind === 'plan' && choice.plan.target === 'safetensors') ? 'folder' : 'file'}`,
      value: defaultOutputFor(input.fsPath, choice),
      prompt: 'Written to a temporary file beside it and renamed when complete; an existing file is never replaced.',
      validateInput: (value) => {
        if (!value.trim()) return 'Give an output path.';
        if (value === input.fsPath) return 'The output cannot be the input.';
        if (existsSync(value)) return `${basename(value)} exists; QuantLens never overwrites.`;
        if (!existsSync(dirname(value))) return `The folder ${dirname(value)} does not exist.`;
        return undefined;
      },
    });
    if (!output) return undefined;
    return this.quantize(input, output, choice, analysis.imatrixPath);
  }

  private async pick(input: vscode.Uri, plan: Plan | undefined, imatrixPath: string | undefined): Promise<QuantizeChoice | undefined> {
    type Item = vscode.QuickPickItem & { choice?: QuantizeChoice };
    const items: Item[] = [];
    if (plan) {
      items.push(
        { label: 'Current plan', kind: vscode.QuickPickItemKind.Separator },
        {
          label: '$(graph-line) Current plan',
          description: `${plan.bitsPerWeight.toFixed(2)} bits per weight · ${plan.target === 'gguf' ? 'GGUF' : 'safetensors'}`,
          detail: `${Object.keys(plan.assignment).length} tensors planned, estimated error ${plan.estimatedError.toExponential(2)}`,
          choice: { kind: 'plan', plan },
        },
      );
    }
    items.push({ label: 'GGUF (llama.cpp presets and types)', kind: vscode.QuickPickItemKind.Separator });
    for (const p of GGUF_PRESETS) items.push({ label: p.type, description: 'GGUF', detail: p.detail, choice: { kind: 'gguf', type: p.type } });
    items.push({ label: 'safetensors', kind: vscode.QuickPickItemKind.Separator });
    for (const s of SAFETENSORS_SCHEMES) items.push({ label: s.scheme, description: 'safetensors', detail: s.detail, choice: { kind: 'safetensors', scheme: s.scheme } });
    const picked = await vscode.window.showQuickPick(items, {
      title: `Quantize ${basename(input.fsPath)}${imatrixPath ? ` (GGUF types weighted by ${basename(imatrixPath)})` : ''}`,
      placeHolder: 'Format, llama.cpp preset or the current plan',
      matchOnDetail: true,
    });
    return picked?.choice;
  }

  /** Quantizes with progress; resolves undefined when cancelled or failed (the user was told). */
  async quantize(input: vscode.Uri, output: string, choice: QuantizeChoice, imatrixPath: string | undefined): Promise<QuantizeOutcome | undefined> {
    const what = choice.kind === 'gguf' ? choice.type : choice.kind === 'safetensors' ? choice.scheme : 'the plan';
    const controller = new AbortController();
    const started = performance.now();
    try {
      const outcome = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `QuantLens: quantizing ${basename(input.fsPath)} to ${what}`, cancellable: true },
        async (progress, token) => {
          const cancel = token.onCancellationRequested(() => controller.abort());
          let reported = 0;
          const onProgress = (p: { tensorsDone: number; tensors: number; bytesDone: number; bytesTotal: number }): void => {
            const share = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 0;
            const seconds = (performance.now() - started) / 1000;
            const rate = seconds > 0.2 ? ` · ${(p.bytesDone / 1e6 / seconds).toFixed(1)} MB/s` : '';
            progress.report({ message: `${p.tensorsDone} / ${p.tensors} tensors${rate}`, increment: Math.max(0, share - reported) * 100 });
            reported = Math.max(reported, share);
          };
          try {
            return await this.write(input.fsPath, output, choice, imatrixPath, controller.signal, onProgress);
          } finally {
            cancel.dispose();
          }
        },
      );
      const seconds = (performance.now() - started) / 1000;
      const result: QuantizeOutcome = { input, output: vscode.Uri.file(outcome.output), summary: `${outcome.summary} in ${seconds.toFixed(1)} s` };
      this.log.info(`quantized ${input.fsPath} → ${outcome.output}: ${result.summary}`);
      for (const d of outcome.warnings) this.log.warn(d);
      void this.offerNextSteps(result, outcome.warnings.length);
      return result;
    } catch (err) {
      const e = toQuantLensError(err);
      if (e.code === 'CANCELLED') {
        void vscode.window.showInformationMessage(`QuantLens: quantization of ${basename(input.fsPath)} cancelled; nothing was written.`);
      } else {
        this.log.error(`quantize ${input.fsPath} → ${output}: [${e.code}] ${e.message}`);
        // full paths push the reason out of the toast: name the folder by its base name (the log has it all)
        const folder = dirname(output);
        const message = e.message.split(`${folder}/`).join('').split(folder).join(`“${basename(folder)}”`);
        // the reason first: a collapsed toast shows one line
        const write = /^cannot write ([^:]+): (.+)$/s.exec(message);
        const text = write ? `${write[2]}: ${basename(input.fsPath)} was not quantized (cannot write ${write[1]})` : `${basename(input.fsPath)} was not quantized: ${message}`;
        void vscode.window.showErrorMessage(`QuantLens: ${text}`);
      }
      return undefined;
    }
  }

  private async write(
    input: string,
    output: string,
    choice: QuantizeChoice,
    imatrixPath: string | undefined,
    signal: AbortSignal,
    onProgress: (p: { tensorsDone: number; tensors: number; bytesDone: number; bytesTotal: number }) => void,
  ): Promise<{ output: string; summary: string; warnings: string[] }> {
    const pool = this.pool.kernel;
    const safetensors = choice.kind === 'safetensors' || (choice.kind === 'plan' && choice.plan.target === 'safetensors');
    if (safetensors) {
      const r = await quantizeToSafetensors(input, output, {
        ...(choice.kind === 'safetensors' ? { scheme: choice.scheme } : { plan: (choice as { plan: Plan }).plan.assignment }),
        quantizer: poolRtnQuantizer(pool, signal),
        signal,
        onProgress,
      });
      const quantized = r.tensors.filter((t) => t.scheme !== null).length;
      return {
        output: r.output,
        summary: `${r.layout}, ${quantized} tensors quantized, ${(r.bytes / 1e6).toFixed(2)} MB, ${r.bitsPerWeight.toFixed(2)} bits per weight`,
        warnings: r.diagnostics.map((d) => `${d.tensor ? `${d.tensor}: ` : ''}${d.message}`),
      };
    }
    const imatrix = imatrixPath ? await readImportanceMatrix(imatrixPath, { signal }) : undefined;
    const importance = imatrix
      ? (name: string) => {
          const e = importanceFor(imatrix, name);
          return e && e.matrices === 1 ? e.weights : undefined;
        }
      : undefined;
    let overrides: { type: string; tensorTypes?: Array<{ pattern: RegExp; type: DType }>; outputTensorType?: DType; tokenEmbeddingType?: DType };
    if (choice.kind === 'gguf') overrides = { type: choice.type };
    else {
      // the exported llama-quantize recipe, carried out: same patterns, same base type
      const recipe = llamaQuantizeRecipe((choice as { plan: Plan }).plan);
      const dtype = (t: string): DType => {
        const upper = t.toUpperCase();
        if (!isDType(upper)) throw new Error(`unknown type ${t} in the plan`);
        return upper;
      };
      const flagValue = (name: string) => {
        const i = recipe.args.indexOf(name);
        return i >= 0 ? dtype(recipe.args[i + 1]) : undefined;
      };
      overrides = {
        type: recipe.baseType,
        tensorTypes: recipe.tensorTypeFile
          .split('\n')
          .filter((l) => l.length > 0)
          .map((l) => ({ pattern: new RegExp(l.slice(0, l.lastIndexOf('='))), type: dtype(l.slice(l.lastIndexOf('=') + 1)) })),
        outputTensorType: flagValue('--output-tensor-type'),
        tokenEmbeddingType: flagValue('--token-embedding-type'),
      };
    }
    const r = await quantizeToGguf(input, output, { ...overrides, encoder: poolTensorEncoder(pool), importance, signal, onProgress });
    return {
      output: r.outputs[0],
      summary: `${r.ftype}${imatrix ? ' with importance matrix' : ''}, ${(r.bytes / 1e6).toFixed(2)} MB of tensors, ${r.bitsPerWeight.toFixed(2)} bits per weight${r.outputs.length > 1 ? `, ${r.outputs.length} files` : ''}`,
      warnings: r.diagnostics.map((d) => `${d.tensor ? `${d.tensor}: ` : ''}${d.message}`),
    };
  }

  private async offerNextSteps(result: QuantizeOutcome, warnings: number): Promise<void> {
    const open = 'Open';
    const compare = 'Compare with Original';
    const reveal = 'Reveal in Explorer';
    const note = warnings > 0 ? ` (${warnings} tensor${warnings === 1 ? '' : 's'} fell back to another type: see the QuantLens output)` : '';
    const choice = await vscode.window.showInformationMessage(`QuantLens: wrote ${basename(result.output.fsPath)}: ${result.summary}${note}.`, open, compare, reveal);
    if (choice === open) await vscode.commands.executeCommand('quantlens.openInInspector', openableFile(result.output));
    else if (choice === compare) await vscode.commands.executeCommand('quantlens.compareCheckpoints', result.input, [result.input, result.output]);
    else if (choice === reveal) await vscode.commands.executeCommand('revealInExplorer', result.output);
  }
}

/** A safetensors output is a folder: the inspector opens its index or its one file. */
function openableFile(output: vscode.Uri): vscode.Uri {
  if (!statSync(output.fsPath, { throwIfNoEntry: false })?.isDirectory()) return output;
  const index = vscode.Uri.joinPath(output, 'model.safetensors.index.json');
  return existsSync(index.fsPath) ? index : vscode.Uri.joinPath(output, 'model.safetensors');
}
