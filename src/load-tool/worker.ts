/**
 * worker_threads entry: one Engine per worker, driven by the coordinator's messages (setup, window,
 * close). It reports progress every 250 ms while a window runs and exits after 'close'.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { Engine } from './engine.js';
import type { EngineConfig, WorkerReply, WorkerRequest } from './types.js';

if (parentPort === null) throw new Error('worker.js must run in a worker thread');
const port: MessagePort = parentPort;

const engine = new Engine(workerData as EngineConfig);
const post = (reply: WorkerReply): void => port.postMessage(reply);

async function handle(request: WorkerRequest): Promise<void> {
  switch (request.kind) {
    case 'open':
      await engine.open();
      post({ kind: 'opened' });
      return;
    case 'setup':
      post({ kind: 'setup-done', report: await engine.setup() });
      return;
    case 'window': {
      const progress = setInterval(() => post({ kind: 'progress', ...engine.progress() }), 250);
      try {
        const report = await engine.runWindow(request.trial, request.ratePps, request.durationMs);
        post({ kind: 'window-done', report });
      } finally {
        clearInterval(progress);
      }
      return;
    }
    case 'stop':
      engine.stop();
      return;
    case 'close':
      await engine.close(request.release);
      post({ kind: 'closed' });
      port.close();
      return;
    default: {
      const never: never = request;
      throw new Error(`unknown request ${JSON.stringify(never)}`);
    }
  }
}

port.on('message', (request: WorkerRequest) => {
  handle(request).catch((err: unknown) => {
    post({ kind: 'error', message: (err as Error).stack ?? String(err) });
  });
});
