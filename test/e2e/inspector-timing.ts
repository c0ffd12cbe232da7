/**
 * Where the time goes between opening a checkpoint and the inspector's first table rows on screen,
 * read from the timestamps the host and the webview leave (epoch ms, one machine, one clock).
 * Used by test/e2e/inspector.e2e.ts and bench/inspector.ts.
 */
import type { Workbench } from './harness';

export interface OpenTimings {
  /** Enter in Quick Open → the open request reaches the extension (activation on a cold open). */
  hostStartMs: number;
  /** Reading the file and the cached statistics on the extension host. */
  hostOpenMs: number;
  /** Enter → the webview's script runs (the host's work plus the webview's creation and bundle load). */
  webviewScriptMs: number;
  /** Enter → the webview has its state (with the first page). */
  stateMs: number;
  /** Enter → the first table rows are drawn: the figure with the < 500 ms goal. */
  firstRowsMs: number;
}

/** Opens `file` through Quick Open and waits for its first table rows. */
export async function openAndTime(wb: Workbench, file: string): Promise<OpenTimings> {
  const pressed = await wb.openFile(file);
  const view = wb.webview();
  const table = view.locator('.tensor-table[data-first-rows-at]');
  await table.waitFor({ state: 'attached', timeout: 60_000 });
  const app = view.locator('#app');
  const at = async (name: string): Promise<number> => Number(await app.getAttribute(name));
  const hostStart = await at('data-host-open-started-at');
  const openMs = /opened in (\d+) ms/.exec((await view.locator('[data-testid="header-summary"]').textContent()) ?? '')?.[1];
  return {
    hostStartMs: hostStart - pressed,
    hostOpenMs: Number(openMs),
    webviewScriptMs: (await at('data-started-at')) - pressed,
    stateMs: (await at('data-ready-at')) - pressed,
    firstRowsMs: Number(await table.getAttribute('data-first-rows-at')) - pressed,
  };
}

export function formatTimings(t: OpenTimings): string {
  return `open request reaches the host ${t.hostStartMs} ms, host reads ${t.hostOpenMs} ms, webview script ${t.webviewScriptMs} ms, state ${t.stateMs} ms, first rows drawn ${t.firstRowsMs} ms`;
}
