/**
 * The `memory` command of the demo's processes (director and worker): the process's memory as
 * the kernel and V8 see it, optionally after a full garbage collection, for the memory figures of
 * `npm run bench:migration` and the bounded-memory tests.
 * @module
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';

/** One process's memory, bytes. */
export interface MemorySample {
  /** Resident set size from /proc/self/status `VmRSS` (falls back to `process.memoryUsage().rss`). */
  rss: number;
  /** V8 heap in use. */
  heapUsed: number;
  /** V8 heap committed. */
  heapTotal: number;
  /** V8 heap resident (`v8.getHeapStatistics().total_physical_size`): RSS minus this is native memory. */
  heapPhysical: number;
  /** Resident size of each V8 heap space (`new_space`, `old_space`, `code_space`, ...). */
  heapSpaces: Record<string, number>;
  /** Memory of C++ objects bound to JavaScript objects (Buffers included). */
  external: number;
  /** Memory of ArrayBuffers and Buffers. */
  arrayBuffers: number;
  /** True when a full garbage collection ran just before (the process has `--expose-gc`). */
  collected: boolean;
}

/** Reads this process's memory; with `gc`, after a full garbage collection if one is available. */
export function sampleMemory(gc = false): MemorySample {
  const collect = (globalThis as { gc?: () => void }).gc;
  const collected = gc && typeof collect === 'function';
  if (collected) collect();
  const m = process.memoryUsage();
  let rss = m.rss;
  try {
    const kib = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (kib) rss = Number(kib[1]) * 1024;
  } catch {
    // not Linux: keep process.memoryUsage().rss
  }
  const heapPhysical = v8.getHeapStatistics().total_physical_size;
  const heapSpaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size]));
  return { rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, heapPhysical, heapSpaces, external: m.external, arrayBuffers: m.arrayBuffers, collected };
}
