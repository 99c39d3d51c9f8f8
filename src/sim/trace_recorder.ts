// Records a simulated run as a replayable trace (trace.ts): the VMM's set-up (devices, mappings,
// tracking), every pin, unpin and dmaRw write of the devices, the guest's CPU writes as the runs
// of its dirty log at each harvest, and each harvest as a read merged with that log. `replay`
// applies them to a fresh engine and reads the same bitmaps, byte for byte.
import { uapi } from '../uapi.js';
import type { DirtyBitmap } from '../core/dirty_bitmap.js';
import { forEachRunBatch } from '../export/run_batches.js';
import { formatTraceEvent, type TraceEvent } from './trace.js';
import type { MdevDevice } from './vgpu.js';

/** Where trace lines go, one event a call, without the newline. */
export type TraceSink = (line: string) => void;

/** Writes events to a sink in the trace format. */
export class TraceRecorder {
  /** Events written. */
  events = 0;

  constructor(private readonly sink: TraceSink) {}

  /** One event. */
  event(ev: TraceEvent): void {
    this.sink(formatTraceEvent(ev));
    this.events++;
  }

  /** The pages set in `log` (a CPU dirty log by guest page) as cpu-dirty events, a batch of runs each. */
  cpuDirty(log: DirtyBitmap): void {
    forEachRunBatch(log, (pairs) => {
      const runs: [number, number][] = [];
      for (let i = 0; i < pairs.length; i += 2) runs.push([pairs[i], pairs[i + 1]]);
      this.event({ op: 'cpu-dirty', runs });
    });
  }

  /**
   * `dev` with its pins, unpins and dmaRw writes recorded under `name` as they succeed (the
   * driver above it is unchanged).
   */
  device(dev: MdevDevice, name: string): MdevDevice {
    return {
      registerDmaUnmap: (fn) => dev.registerDmaUnmap(fn),
      pinPages: (iova, npage, prot) => {
        const r = dev.pinPages(iova, npage, prot);
        if (r > 0) this.event({ op: 'pin', iova, npage: r, write: (prot & uapi.IOMMU_WRITE) !== 0, device: name });
        return r;
      },
      unpinPages: (iova, npage) => {
        dev.unpinPages(iova, npage);
        this.event({ op: 'unpin', iova, npage, device: name });
      },
      dmaRw: (iova, data, write) => {
        const r = dev.dmaRw(iova, data, write);
        // The trace records a write as one repeated byte: the vGPU's writes are (vgpu.ts).
        if (r >= 0 && write) this.event({ op: 'write', iova, length: data.length, value: data[0], device: name });
        return r;
      },
    };
  }
}
