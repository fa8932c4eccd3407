/**
 * Demo process: the client. Streams `tokens` from the director (`--address`: one, or several
 * separated by commas; `--resume` to survive its director), prints every item, every migration
 * and every resume it noticed, and sends its record to the parent over IPC when the stream ends.
 * @module
 */
import { parseArgs } from 'node:util';

import { streamTokens } from './client.js';

const { values } = parseArgs({
  options: {
    address: { type: 'string' },
    pin: { type: 'string' },
    'ca-file': { type: 'string' },
    resume: { type: 'boolean', default: false },
    'loss-detection-ms': { type: 'string' },
    count: { type: 'string' },
    'interval-ms': { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});
const record = await streamTokens({
  address: values.address!.split(','),
  pin: values.pin,
  caFile: values['ca-file'],
  resume: values.resume,
  lossDetectionMs: values['loss-detection-ms'] ? Number(values['loss-detection-ms']) : undefined,
  count: Number(values.count),
  intervalMs: Number(values['interval-ms']),
  onConnected: (c) => {
    if (!values.quiet) console.log(`client: connected to ${c.remoteAddress}, connectionId ${c.connectionId}`);
  },
  onItem: (item) => {
    if (!values.quiet) console.log(`client: conn=${item.conn} worker=${item.worker} seq=${item.seq} token=${item.token}`);
  },
  onResumed: (address, pauseMs) => {
    if (!values.quiet) console.log(`client: ** session resumed on director ${address} after ${pauseMs.toFixed(1)} ms`);
  },
  onSwitch: (s) => {
    if (!values.quiet) console.log(`client: ** now served by ${s.to} (was ${s.from}) at seq ${s.seq}; pause ${s.pauseMs.toFixed(1)} ms beyond the interval`);
  },
});
process.send?.({ type: 'record', record }, () => process.exit(0));
