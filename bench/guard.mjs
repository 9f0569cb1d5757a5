// Preloaded (`node --import ./bench/guard.mjs ...`) into the bench's child processes: when
// the bench's pipe to our stdin closes (the bench exited, even by SIGKILL), end this process:
// SIGTERM first (a graceful stop), SIGKILL 5 s later. Touches nothing else. Only on the main
// thread: through NODE_OPTIONS it is preloaded into worker threads too, whose stdin is empty.
import { isMainThread } from 'node:worker_threads';

if (isMainThread && !process.stdin.isTTY) {
  const end = () => {
    process.kill(process.pid, 'SIGTERM');
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 5000).unref();
  };
  process.stdin.on('end', end);
  process.stdin.on('error', end);
  process.stdin.resume();
  // Reading stdin must not keep the process alive on its own.
  process.stdin.unref?.();
}
