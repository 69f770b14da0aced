// Reads a Chrome trace with Chrome DevTools' trace engine (the Performance panel's model, published on npm as
// @paulirish/trace_engine) and prints, as JSON, the slices it found on each thread as the tree it built:
// {"PID": {"TID": [{"name", "ts", "dur", "children": [...]}, ...]}}, times in microseconds.
// Usage: node trace_tree.mjs ENGINE_DIR TRACE.json
import path from 'node:path';
import {pathToFileURL} from 'node:url';

const [engineDir, tracePath] = process.argv.slice(2);
const {analyzeTrace} = await import(pathToFileURL(path.join(engineDir, 'analyze-trace.mjs')).href);
const {parsedTrace} = await analyzeTrace(tracePath);
const data = parsedTrace.data ?? parsedTrace;

function node(tree) {
  const entry = tree.entry;
  return {name: entry.name, ts: entry.ts, dur: entry.dur ?? 0, children: tree.children.map(node)};
}

const result = {};
for (const [pid, proc] of data.Renderer.processes) {
  result[pid] = {};
  for (const [tid, thread] of proc.threads) {
    result[pid][tid] = thread.tree ? [...thread.tree.roots].map(node) : [];
  }
}
process.stdout.write(JSON.stringify(result));
