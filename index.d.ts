// Public declarations of rpcnet. They are emitted by `tsc` from src/ into dist/ (see tsconfig.json);
// this file re-exports them so `types` in package.json points at one stable path.
export * from './dist/index.js';
