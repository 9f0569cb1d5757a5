/**
 * The demo web app. `vite build web` (part of `npm run build`) writes dist/web, which the node
 * serves at / with --dev or SB_WEB=1. `npm run dev:web` runs Vite's dev server (hot reload)
 * in front of a node started with `npm run dev` (SB_NODE overrides its address).
 */
import { defineConfig } from 'vite';

const node = process.env.SB_NODE ?? 'http://127.0.0.1:8080';

export default defineConfig({
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
  server: {
    proxy: {
      '/ws': { target: node, ws: true },
      '/dev': node,
      '/media': node,
    },
  },
});
