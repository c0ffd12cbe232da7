import type { InspectorHostSide, InspectorWebviewSide } from '../../src/shared/protocol';
import { RpcEndpoint } from '../../src/shared/rpc';

interface VsCodeApi {
  postMessage(message: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

export type InspectorRpc = RpcEndpoint<InspectorHostSide, InspectorWebviewSide>;

/** The webview's end of the inspector protocol. */
export function connect(): InspectorRpc {
  const vscode = acquireVsCodeApi();
  const rpc: InspectorRpc = new RpcEndpoint((message) => vscode.postMessage(message));
  window.addEventListener('message', (event: MessageEvent) => rpc.receive(event.data));
  return rpc;
}
