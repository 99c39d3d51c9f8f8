// What the simulator and the replayer need of an engine: the typed API of src/index.ts, narrowed
// to the calls they make, so that tests can hand them any engine with these members.
import type { DirtyContainer } from '../export/dirty_report.js';
import type { MdevDevice } from './vgpu.js';

export interface SimEngine {
  createProcess(opts?: { memlockLimit?: bigint; capIpcLock?: boolean }): SimProcess;
  createGroup(opts: {
    kind: 'iommu' | 'emulated';
    devices?: (string | { name: string; dmaLogging?: { maxRanges?: number } })[];
    iommuDirtyTracking?: boolean;
  }): SimGroup;
  openContainer(proc: SimProcess): SimContainer;
  memoryInUse(): number;
}
export interface SimProcess {
  mmap(length: bigint | number): bigint;
}
export interface SimGroup {
  readonly id: number;
  readonly devices: readonly MdevDevice[];
}
export interface SimContainer extends DirtyContainer {
  attach(group: SimGroup): void;
  setIommu(type: 'type1v2' | 'type1'): void;
  openDevice(group: SimGroup, name?: string): number;
  map(m: { iova: bigint; vaddr: bigint; size: bigint; read?: boolean; write?: boolean }): void;
  unmap(m: { iova: bigint; size: bigint }): bigint;
  unmapAll(): bigint;
  readonly dirty: DirtyContainer['dirty'] & { start(): void; stop(): void };
  close(): void;
}
