import * as vscode from 'vscode';
import { nominalBitsPerWeight, quantFormat } from '../../core/sensitivity/formats';
import type { FormatErrors, TensorSensitivity } from '../../core/sensitivity/types';
import { Disposable } from '../dispose';
import type { ModelAnalysis, SensitivityService } from './service';
import type { LayerSensitivity } from './sensitivity-model';

type Node = { kind: 'layer'; layer: LayerSensitivity; heat: number } | { kind: 'tensor'; tensor: TensorSensitivity; heat: number };

/** Heat from cool to hot: theme chart colours, so every theme draws them legibly. */
const HEAT_COLORS = ['charts.green', 'charts.yellow', 'charts.orange', 'charts.red'];
/** SQNR figures shown in a row's description (all of them are in its tooltip). */
const SHOWN_FORMATS = 3;

/**
 * The sensitivity sidebar: the active checkpoint's layers, most sensitive first with a heat icon,
 * each expandable to its tensors with their SQNR at the measured formats and the planned format.
 * Clicking a tensor reveals it in the inspector.
 */
export class SensitivityTreeProvider extends Disposable implements vscode.TreeDataProvider<Node> {
  static readonly viewId = 'quantlens.sensitivity';
  private readonly changed = this._register(new vscode.EventEmitter<Node | undefined>());
  readonly onDidChangeTreeData = this.changed.event;
  readonly view: vscode.TreeView<Node>;

  constructor(private readonly service: SensitivityService) {
    super();
    this.view = this._register(vscode.window.createTreeView(SensitivityTreeProvider.viewId, { treeDataProvider: this, showCollapseAll: true }));
    this._register(service.onDidChange(() => this.refresh()));
    this.refresh();
  }

  private refresh(): void {
    const m = this.service.active;
    this.view.title = 'Sensitivity';
    this.view.description = m?.fileName;
    this.view.message = messageOf(m);
    void vscode.commands.executeCommand('setContext', 'quantlens.sweepRunning', m?.sweep !== undefined);
    void vscode.commands.executeCommand('setContext', 'quantlens.planReady', m?.plan !== undefined);
    this.changed.fire(undefined);
  }

  getChildren(node?: Node): Node[] {
    const m = this.service.active;
    if (!m) return [];
    if (!node) {
      const { layers } = this.service.layers(m);
      return layers.map((layer, i) => ({ kind: 'layer', layer, heat: heatOf(i, layers.length, layer.group !== undefined) }));
    }
    if (node.kind === 'layer') {
      const { reference } = this.service.layers(m);
      const scored = node.layer.tensors.filter((t) => reference && t.errors[reference]);
      return node.layer.tensors.map((tensor) => {
        const rank = scored.indexOf(tensor);
        return { kind: 'tensor', tensor, heat: rank < 0 ? -1 : heatOf(rank, scored.length, true) };
      });
    }
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    const m = this.service.active!;
    const { reference } = this.service.layers(m);
    if (node.kind === 'layer') {
      const l = node.layer;
      const item = new vscode.TreeItem(l.layer === null ? 'Outside layers' : `Layer ${l.layer}`, vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `${m.uri.toString()}#layer:${l.layer}`;
      const e = reference ? l.group?.errors[reference] : undefined;
      const planned = plannedBits(m, l.tensors);
      // `outputs` sweeps (ONNX): the model's output SQNR with this layer quantized, the figure they rank by
      const shown = e && m.result?.mode === 'outputs' && e.outputRelMse !== undefined ? `${reference} output ${sqnr(e.outputRelMse > 0 ? -10 * Math.log10(e.outputRelMse) : null)}` : e ? `${reference} ${sqnr(e.sqnrDb)}` : undefined;
      item.description = [shown ?? 'no format fits', planned].filter(Boolean).join(' · ');
      item.iconPath = heatIcon(node.heat, 'flame');
      item.tooltip = errorTable(`${item.label as string} (${l.tensors.length} tensors, parameter-weighted)`, l.group?.errors ?? {}, m, undefined);
      item.contextValue = 'layer';
      return item;
    }
    const t = node.tensor;
    const item = new vscode.TreeItem(shortName(t), vscode.TreeItemCollapsibleState.None);
    item.id = `${m.uri.toString()}#tensor:${t.name}`;
    const planned = m.plan?.assignment[t.name];
    const shown = shownFormats(t.errors, m, reference, planned);
    const figures = shown.map((f) => `${f} ${sqnr(t.errors[f]!.sqnrDb, false)}`).join(' · ');
    item.description = t.quantizable ? `${figures}${figures ? ' dB' : ''}${planned ? ` → ${planned}` : m.plan ? ' → kept' : ''}` : 'kept: no format fits its rows';
    item.iconPath = heatIcon(node.heat, 'symbol-array');
    item.tooltip = errorTable(t.name, t.errors, m, t);
    item.command = { command: 'quantlens.revealTensor', title: 'Reveal Tensor', arguments: [m.uri, t.name] };
    item.contextValue = 'tensor';
    return item;
  }
}

function messageOf(m: ModelAnalysis | undefined): string | undefined {
  if (!m) return undefined;
  if (m.sweep) return `Measuring ${m.fileName}: ${(m.sweep.progress * 100).toFixed(0)}%`;
  if (m.tensors.length === 0) return m.planError ?? `Run the sensitivity sweep to rank the layers of ${m.fileName}.`;
  if (m.planError) return m.planError;
  if (m.plan) {
    const p = m.plan;
    return `Plan: ${p.bitsPerWeight.toFixed(2)} bits per weight, ${(p.bytes / 1e6).toFixed(p.bytes < 1e7 ? 2 : 0)} MB${m.result?.mode === 'imatrix' ? ' · imatrix-weighted' : ''}`;
  }
  return undefined;
}

/** Hottest quarter red, then orange, yellow, green; -1: not measured. */
function heatOf(rank: number, count: number, measured: boolean): number {
  if (!measured || count === 0) return -1;
  return HEAT_COLORS.length - 1 - Math.min(HEAT_COLORS.length - 1, Math.floor((rank / count) * HEAT_COLORS.length));
}

function heatIcon(heat: number, icon: string): vscode.ThemeIcon {
  return heat < 0 ? new vscode.ThemeIcon('circle-outline', new vscode.ThemeColor('disabledForeground')) : new vscode.ThemeIcon(icon, new vscode.ThemeColor(HEAT_COLORS[heat]));
}

function sqnr(db: number | null, unit = true): string {
  return db === null ? 'lossless' : `${db.toFixed(1)}${unit ? ' dB' : ''}`;
}

/** The tensor's name without its layer prefix (`self_attn.q_proj.weight`, `attn_q.weight`). */
function shortName(t: TensorSensitivity): string {
  if (t.layer === null) return t.name;
  const m = new RegExp(`(?:^|\\.)${t.layer}\\.(.+)$`).exec(t.name);
  return m ? m[1] : t.name;
}

/**
 * The formats a description shows: the planned one, the reference, and the most precise measured
 * one, at most SHOWN_FORMATS, most bits first.
 */
function shownFormats(errors: FormatErrors, m: ModelAnalysis, reference: string | undefined, planned: string | undefined): string[] {
  const measured = Object.keys(errors).filter((f) => errors[f]);
  const bits = (f: string) => nominalBitsPerWeight(quantFormat(f, m.target));
  measured.sort((a, b) => bits(b) - bits(a));
  const picked = new Set<string>();
  for (const f of [planned, measured[0], reference, measured[measured.length - 1]]) {
    if (f && errors[f] && picked.size < SHOWN_FORMATS) picked.add(f);
  }
  return [...picked].sort((a, b) => bits(b) - bits(a));
}

function plannedBits(m: ModelAnalysis, tensors: TensorSensitivity[]): string | undefined {
  if (!m.plan) return undefined;
  let bytes = 0;
  let params = 0;
  for (const t of tensors) {
    const p = m.plan.tensors.find((x) => x.name === t.name);
    if (!p) continue;
    bytes += p.bytes;
    params += p.params;
  }
  return params > 0 ? `planned ${((bytes * 8) / params).toFixed(2)} bpw` : undefined;
}

function errorTable(title: string, errors: FormatErrors, m: ModelAnalysis, t: TensorSensitivity | undefined): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.appendMarkdown(`**${escapeMd(title)}**\n\n`);
  if (t) md.appendMarkdown(`${t.dtype} [${t.shape.join(', ')}], ${t.params.toLocaleString('en-US')} parameters${t.sampledRows < t.rows ? `, ${t.sampledRows} of ${t.rows} rows sampled` : ''}\n\n`);
  const rows = Object.entries(errors).filter(([, e]) => e);
  if (rows.length === 0) {
    md.appendMarkdown('No candidate format fits this tensor: it is kept as it is.');
    return md;
  }
  const planned = t ? m.plan?.assignment[t.name] : undefined;
  md.appendMarkdown('| format | SQNR dB | rel. MSE | max abs err |\n|---|---:|---:|---:|\n');
  for (const [f, e] of rows) {
    md.appendMarkdown(`| ${f}${f === planned ? ' (planned)' : ''} | ${sqnr(e!.sqnrDb, false)} | ${e!.relMse.toExponential(2)}${e!.relMseBound > 0 ? ` ± ${e!.relMseBound.toExponential(1)}` : ''} | ${e!.maxAbsErr.toExponential(2)} |\n`);
  }
  return md;
}

function escapeMd(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}
