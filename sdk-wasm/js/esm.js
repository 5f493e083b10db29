// npm entry: `import { initTracking, getTracking } from "maidian"`. Bundlers (Vite, webpack)
// resolve the wasm through `new URL(..., import.meta.url)`.
import init, { Tracker } from './maidian_sdk.js';

const api = makeMaidian(
  () => init({ module_or_path: new URL('./maidian_sdk_bg.wasm', import.meta.url) }).then(() => ({ Tracker })),
  '/api'
);

export const initTracking = api.initTracking;
export const getTracking = api.getTracking;
