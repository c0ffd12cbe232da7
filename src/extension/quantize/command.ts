import * as vscode from 'vscode';
import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { toQuantLensError } from '../../core/errors';
import { importanceFor, readImportanceMatrix } from '../../core/imatrix';
import type { Plan } from '../../core/plan/plan';
import { quantizeToGguf } from '../../core/quantize/to-gguf';
import { quantizeToSafetensors } from '../../core/quantize/to-safetensors';
import { poolTensorEncoder } from '../../kernel/pool-encoder';
import { poolRtnQuantizer } from '../../kernel/rtn-job';
import type { LazyKernelPool } from '../kernel-pool';
import type { SensitivityService } from '../sensitivity/service';
import {
  GGUF_PRESETS, SAFETENSORS_SCHEMES, choiceLabel, defaultOutputFor, ggufTypesOfPlan, outputProblem, quantizeFailureText, writesSafetensors,
  type GgufTypeChoice, type QuantizeChoice,
} from './quantize-model';

export interface QuantizeOutcome {
  input: vscode.Uri;
  /** The written file or folder (split GGUF: the first file). */
  output: vscode.Uri;
  summary: string;
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
      title: `Quantize ${basename(input.fsPath)}: output ${writesSafetensors(choice) ? 'folder' : 'file'}`,
      value: defaultOutputFor(input.fsPath, choice),
      prompt: 'Written to a temporary file beside it and renamed when complete; an existing file is never replaced.',
      validateInput: (value) => outputProblem(value, input.fsPath),
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
  async quantize(
    input: vscode.Uri,
    output: string,
    choice: QuantizeChoice,
    imatrixPath: string | undefined,
    allowRequantize = false,
  ): Promise<QuantizeOutcome | undefined> {
    const what = choiceLabel(choice);
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
            return await this.write(input.fsPath, output, choice, imatrixPath, allowRequantize, controller.signal, onProgress);
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
      } else if (e.code === 'REQUANTIZE' && !allowRequantize) {
        // As llama-quantize --allow-requantize: possible, but the user decides, knowing the cost.
        const requantize = 'Requantize Anyway';
        const answer = await vscode.window.showWarningMessage(`QuantLens: ${e.message}`, { modal: true }, requantize);
        if (answer === requantize) return this.quantize(input, output, choice, imatrixPath, true);
      } else {
        this.log.error(`quantize ${input.fsPath} → ${output}: [${e.code}] ${e.message}`);
        void vscode.window.showErrorMessage(`QuantLens: ${quantizeFailureText(e.message, input.fsPath, output)}`);
      }
      return undefined;
    }
  }

  private async write(
    input: string,
    output: string,
    choice: QuantizeChoice,
    imatrixPath: string | undefined,
    allowRequantize: boolean,
    signal: AbortSignal,
    onProgress: (p: { tensorsDone: number; tensors: number; bytesDone: number; bytesTotal: number }) => void,
  ): Promise<{ output: string; summary: string; warnings: string[] }> {
    const pool = this.pool.kernel;
    if (writesSafetensors(choice)) {
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
    const overrides: GgufTypeChoice = choice.kind === 'gguf' ? { type: choice.type } : ggufTypesOfPlan((choice as { plan: Plan }).plan);
    const r = await quantizeToGguf(input, output, { ...overrides, allowRequantize, encoder: poolTensorEncoder(pool), importance, signal, onProgress });
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
