// The set-up every VFIO benchmark starts from: one emulated group whose device has
// registered its dma_unmap op, in a type1v2 container of one process.
import { uapi } from '../src/index.js';
import type { Engine, Process, VfioDevice } from '../src/index.js';

/** The subset of the engine surface both the Wasm engine and the reference model offer. */
export type AnyEngine = Pick<Engine, 'createGroup' | 'createProcess'>;

export interface Rig {
  proc: Process;
  fd: number;
  dev: VfioDevice;
}

/** Throws when a set-up call fails: a benchmark measures only calls that succeed. */
export function must(r: number, what: string): number {
  if (r < 0) throw new Error(`${what} failed: ${r}`);
  return r;
}

/** One emulated group whose device registered dma_unmap; its container fd and device. */
export function emulatedRig(engine: AnyEngine): Rig {
  const proc = engine.createProcess() as Process;
  const g = engine.createGroup({ kind: 'emulated' });
  const fd = proc.open('/dev/vfio/vfio');
  const gfd = proc.open(`/dev/vfio/${g.id}`);
  must(proc.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, fd), 'SET_CONTAINER');
  must(proc.ioctl(fd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 'SET_IOMMU');
  must(proc.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, g.devices[0].name), 'GET_DEVICE_FD');
  const dev = g.devices[0] as VfioDevice;
  dev.registerDmaUnmap(() => {});
  return { proc, fd, dev };
}
