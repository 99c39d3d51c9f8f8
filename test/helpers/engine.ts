// The engine under test: the Wasm engine from src/index.ts, or, with VFIO_DIRTY_ENGINE=reference,
// the plain-TS reference model (test/reference/engine.ts), which has the same surface. The types
// below are the public surface both engines promise plus the engine extras the spec tests read
// (inspect()), written out here so the tests say what they rely on. makeEngine assigns both
// engines to this type without a cast, so the type checker reports any drift in either.

/** Options of createEngine (the common ones plus the engine's own). */
export interface EngineOptions {
  profile?: 'linux-6.18' | 'linux-6.6';
  dmaEntryLimit?: number;
  memoryLimit?: number;
  flavour?: 'release' | 'debug';
}

export interface GroupOptions {
  kind: 'iommu' | 'emulated';
  devices?: string[];
  viable?: boolean;
  pgsizeBitmap?: bigint;
  aperture?: [bigint, bigint];
  reserved?: [bigint, bigint][];
}

/** A vendor driver's handle on a device (docs/conformance.md §6). */
export interface VfioDevice {
  readonly name: string;
  registerDmaUnmap(op: (iova: bigint, size: bigint) => void): void;
  pinPages(iova: bigint, npage: number, prot: number, pfns?: BigUint64Array): number;
  unpinPages(iova: bigint, npage: number): void;
  dmaRw(iova: bigint, data: Uint8Array, write: boolean): number;
}

export interface Group {
  readonly id: number;
  readonly devices: readonly VfioDevice[];
}

export interface ProcessOptions {
  memlockLimit?: bigint;
  capIpcLock?: boolean;
}

/** A user process (docs/conformance.md §13.1). */
export interface Proc {
  mmap(length: bigint | number): bigint;
  read(addr: bigint, length: number): Uint8Array;
  write(addr: bigint, bytes: Uint8Array): void;
  readonly lockedVm: bigint;
  open(path: string): number;
  ioctl(fd: number, request: number, arg?: number | bigint | string | Uint8Array): number;
  close(fd: number): number;
}

/** One vfio_dma in inspect(). */
export interface DmaSnapshot {
  iova: bigint;
  size: bigint;
  vaddr: bigint;
  prot: number;
  iommuMapped: boolean;
  vaddrInvalid: boolean;
  lockCap: boolean;
  pins: [number | bigint, number][];
  bitmap: string | null;
}

export interface ContainerSnapshot {
  fd: number;
  iommu: null | 'type1' | 'type1v2';
  tracking: boolean;
  dmaAvail: number;
  nonPinnedGroups: number;
  vaddrInvalidCount: number;
  groups: number[];
  dmas: DmaSnapshot[];
}

export interface Snapshot {
  containers: ContainerSnapshot[];
  processes: { lockedVm: bigint }[];
  heapUsed: number;
}

export interface Engine {
  createGroup(o: GroupOptions): Group;
  createProcess(o?: ProcessOptions): Proc;
  inspect(): Snapshot;
}

/**
 * A fresh engine: the Wasm one (VFIO_DIRTY_FLAVOUR=debug picks the debug build), or the reference
 * model when VFIO_DIRTY_ENGINE=reference.
 */
export async function makeEngine(opts: EngineOptions = {}): Promise<Engine> {
  if (process.env.VFIO_DIRTY_ENGINE === 'reference') {
    const ref = await import('../reference/engine.js');
    const r: Engine = await ref.createEngine(opts);
    return r;
  }
  const { createEngine } = await import('../../src/index.js');
  // VFIO_DIRTY_FLAVOUR=debug runs the same tests on the debug build (assertions kept).
  const flavour = opts.flavour ?? (process.env.VFIO_DIRTY_FLAVOUR === 'debug' ? 'debug' : undefined);
  const e: Engine = await createEngine({ ...opts, flavour });
  return e;
}
