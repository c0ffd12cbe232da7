import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';

/**
 * The page of a QuantLens webview panel (plan, compare): the bundle dist/webview/<name>.js with its
 * stylesheet, @vscode-elements/elements, a strict CSP with a fresh nonce, nothing from a network.
 */
export function webviewPage(webview: vscode.Webview, extensionUri: vscode.Uri, name: 'plan' | 'compare' | 'activations', title: string): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (file: string): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', file)).toString();
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" nonce="${nonce}" href="${asset(`${name}.css`)}">
<script type="module" nonce="${nonce}" src="${asset('elements.js')}"></script>
<script defer nonce="${nonce}" src="${asset(`${name}.js`)}"></script>
<title>${title.replace(/[<>&"]/g, '')}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Loading…</p></main>
</body>
</html>`;
}

/** Options of every QuantLens webview panel: scripts on, only the bundles readable, no retained context. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')] };
}
