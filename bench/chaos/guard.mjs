// Preloaded into every node the chaos tool starts (`node --import bench/chaos/guard.mjs
// dist/node.js`): when the tool's pipe to our stdin closes (the tool exited, even by
// SIGKILL), this process ends itself at once, so a crashed tool leaves no orphan nodes.
// It touches nothing else. (A node that is SIGSTOPped at that moment ends when continued.)
// Main thread only: a worker thread's stdin is empty.
import { isMainThread } from 'node:worker_threads';

if (isMainThread && !process.stdin.isTTY) {
  const end = () => process.kill(process.pid, 'SIGKILL');
  process.stdin.on('end', end);
  process.stdin.on('error', end);
  process.stdin.resume();
  // Reading stdin must not keep the process alive on its own.
  process.stdin.unref?.();
}
