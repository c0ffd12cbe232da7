// The part of pngjs (no bundled types) QuantLens uses: synchronous decoding to 8-bit RGBA.
declare module 'pngjs' {
  export const PNG: {
    sync: {
      read(buffer: Uint8Array, options?: { checkCRC?: boolean }): { width: number; height: number; data: Uint8Array };
    };
  };
}
