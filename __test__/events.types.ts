/**
 * Type-level tests of the Director's events, checked by `npm run test:types` (tsc) and never run:
 * each `@ts-expect-error` must meet an error, so a regression to loosely typed events (any
 * string accepted as an event name, `any` listeners) fails the type check.
 */
import type {
  Director,
  DirectorEvent,
  FailoverEvent,
  MigrationCompletedEvent,
  MigrationReport,
  SessionOpenedEvent,
} from '../dist/index.js';

declare const director: Director;

// Each listener gets the type of its event.
director.on('migration-completed', (e) => {
  const kind: 'migration-completed' = e.kind;
  const report: MigrationReport = e.report;
  const same: MigrationCompletedEvent = e;
  void [kind, report, same];
  // @ts-expect-error a migration-completed event has no sessionId of its own (it is in report)
  void e.sessionId;
});
director.once('session-opened', (e) => {
  const s: SessionOpenedEvent = e;
  const connectionId: string = e.connectionId;
  void [s, connectionId];
});
director.prependListener('failover', (e) => {
  const ms: number = e.detectedAfterMs;
  const f: FailoverEvent = e;
  void [ms, f];
  // @ts-expect-error a failover event has no report
  void e.report;
});
director.addListener('worker-joined', (e) => {
  const worker: string = e.worker;
  void worker;
  // @ts-expect-error worker-joined carries the worker id, not a session
  void e.sessionId;
});

// 'event' receives every event, narrowed by its kind.
director.on('event', (e) => {
  const any: DirectorEvent = e;
  void any;
  if (e.kind === 'migration-aborted') {
    const abortedIn: string | undefined = e.report.abortedIn;
    void abortedIn;
  }
  // @ts-expect-error not every event has a worker
  void e.worker;
});

// A misspelled or unknown event name is a compile error.
// @ts-expect-error no such event (migration-completed)
director.on('migration-complete', () => {});
// @ts-expect-error no such event
director.off('session-open', () => {});
// @ts-expect-error the director emits no 'error' event
director.on('error', () => {});

// A listener typed for another event does not fit.
// @ts-expect-error failover listeners get FailoverEvent, not SessionOpenedEvent
director.on('failover', (e: SessionOpenedEvent) => void e);

// events() is typed too.
async function iterate(): Promise<void> {
  for await (const e of director.events()) {
    const any: DirectorEvent = e;
    void any;
    // @ts-expect-error DirectorEvent is a union: report only after narrowing
    void e.report;
  }
}
void iterate;
