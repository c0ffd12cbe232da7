import * as vscode from 'vscode';
import type { InspectorSettings } from '../shared/protocol';

/** The `quantlens.*` settings (declared in package.json's contributes.configuration). */
export function inspectorSettings(): InspectorSettings {
  const config = vscode.workspace.getConfiguration('quantlens');
  return { histogramBins: clamp(config.get<number>('inspector.histogramBins', 256), 8, 4096) };
}

export function workerCount(): number {
  return clamp(vscode.workspace.getConfiguration('quantlens').get<number>('workers', 0), 0, 64);
}

export function statsCacheEnabled(): boolean {
  return vscode.workspace.getConfiguration('quantlens').get<boolean>('cache.enabled', true);
}

function clamp(x: number, lo: number, hi: number): number {
  return Number.isFinite(x) ? Math.min(hi, Math.max(lo, Math.floor(x))) : lo;
}

/** Analyze All asks first above this many tensor bytes (0: never). */
export function largeFileConfirmBytes(): number {
  return Math.max(0, vscode.workspace.getConfiguration('quantlens').get<number>('inspector.largeFileConfirmBytes', 4e9));
}
