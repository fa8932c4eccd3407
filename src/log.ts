/**
 * Handing the Rust runtime's log records to the application's own logger (pino, winston, ...)
 * instead of stderr: {@link setLogHandler}. The records are the ones `RPCNET_LOG` lets through
 * (default: warnings and errors); they cross into JavaScript in batches, on a thread of their own,
 * so logging never waits for JavaScript, and the handler does not keep the process alive.
 * @module
 */
import { native } from './binding.js';
import { asRpcError, reportInternal } from './errors.js';
import { func } from './options.js';

/** One log record of the runtime. */
export interface LogRecord {
  /** `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`. */
  readonly level: 'ERROR' | 'WARN' | 'INFO' | 'DEBUG' | 'TRACE';
  /** The Rust module that logged it, e.g. `rpcnet_runtime::worker::membership`. */
  readonly target: string;
  /** The message. */
  readonly message: string;
  /** The record's other fields (e.g. `worker`, `director`, `addr`), values as text. */
  readonly fields: Readonly<Record<string, string>>;
  /** When it was logged. */
  readonly time: Date;
}

/**
 * Sends the runtime's log records to `handler` (one call per record) instead of stderr, or back
 * to stderr with `null`. Replaces an earlier handler. What the handler throws is reported as a
 * process warning and does not stop later records. When the handler falls behind by more than
 * 4096 records, records are dropped and a `WARN` record says how many.
 * @throws {RpcError} `INVALID_ARGUMENT` when `handler` is neither a function nor `null`.
 */
export function setLogHandler(handler: ((record: LogRecord) => void) | null): void {
  if (handler === null) {
    native.setLogHandler(null);
    return;
  }
  const fn = func('handler', handler);
  native.setLogHandler((records) => {
    for (const r of records) {
      try {
        fn({
          level: r.level as LogRecord['level'],
          target: r.target,
          message: r.message,
          fields: Object.fromEntries(r.fields.map(([k, v]) => [k!, v!])),
          time: new Date(r.timestampMs),
        });
      } catch (e) {
        reportInternal(asRpcError(e, 'the log handler threw'));
      }
    }
  });
}
