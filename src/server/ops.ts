// The request table of the server: one entry per operation code (docs/PROTOCOL.md §4). Each entry
// decodes its payload with a Reader, calls the engine as the in-process API would, and returns
// the i64 result with the bytes the call wrote back. The entries live beside this file, one file
// per subsystem (ops_<subsystem>.ts); this is the one table they form.
import type { Handler } from './ops_common.js';
import { deviceOps } from './ops_device.js';
import { kvmOps } from './ops_kvm.js';
import { pasidOps } from './ops_pasid.js';
import { processOps } from './ops_process.js';
import { vfioOps } from './ops_vfio.js';

export { MAX_DATA, deviceByName, holdsGroup, type Reply } from './ops_common.js';

/** The request table: op code to handler. */
export const opTable: Record<number, Handler | undefined> = {
  ...processOps,
  ...vfioOps,
  ...kvmOps,
  ...deviceOps,
  ...pasidOps,
};
