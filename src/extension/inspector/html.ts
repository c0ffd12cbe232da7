import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';

/**
 * The inspector's page: everything bundled and loaded from the extension (inspector.js carries the
 * @vscode-elements components it uses), a strict CSP with a fresh nonce per page.
 */
export function inspectorHtml(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (name: string): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', name)).toString();
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
<link rel="stylesheet" nonce="${nonce}" href="${asset('inspector.css')}">
<script defer nonce="${nonce}" src="${asset('inspector.js')}"></script>
<title>QuantLens Inspector</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Reading the checkpoint…</p></main>
</body>
</html>`;
}
