// npm entry: `import { initTracking, getTracking } from "maidian"`. Bundlers (Vite, webpack)
// resolve the wasm through `new URL(..., import.meta.url)`; the loader (wasm.js) is inside
// this same file.
const api = makeMaidian((imports) => maidianWasm(new URL('./maidian_sdk_bg.wasm', import.meta.url), imports), '/api');

export const initTracking = api.initTracking;
export const getTracking = api.getTracking;
