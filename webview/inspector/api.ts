import type { InspectorHostSide, InspectorWebviewSide } from '../../src/shared/protocol';
import type { RpcEndpoint } from '../../src/shared/rpc';

/** The webview's end of the inspector protocol. */
export type InspectorRpc = RpcEndpoint<InspectorHostSide, InspectorWebviewSide>;
