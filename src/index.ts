// vfio-dirty: the package's whole public surface.
import { Engine, type EngineOptions } from './engine.js';

/**
 * Compiles the Wasm core (once per process) and creates an engine: groups, processes, and
 * containers behaving as the Linux VFIO type1 backend (docs/conformance.md). Every call on the
 * engine after this one is synchronous. Rejects with a TypeError for an unknown option name or a
 * value of the wrong type, and with a RangeError for a value out of range. End the engine with
 * `engine.dispose()`, each process with `proc.exit()`, each group with `group.remove()`.
 */
export function createEngine(options: EngineOptions = {}): Promise<Engine> {
  return Engine.create(options);
}

export { uapi } from './uapi.js';
export {
  errno, errnoName, VfioError, PermissionError, NotFoundError, TooBigError, BadFileError,
  OutOfMemoryError, AccessError, FaultError, BusyError, ExistsError, NoDeviceError,
  InvalidArgumentError, NotSupportedError, NoSpaceError, OverflowError,
  type ErrorRange,
} from './errors.js';
export { Engine, type EngineOptions } from './engine.js';
export type { ProfileName } from './vfio/profile.js';
export { Group, VfioDevice, type GroupKind, type GroupOptions } from './vfio/group.js';
export type { DeviceSpec, TrackerOptions, Tracker } from './vfio/device_state.js';
export { Process, type ProcessOptions } from './process.js';
export { Kvm } from './kvm/kvm.js';
export { Vcpu } from './kvm/vcpu.js';
export type { PageTrackNotifierNode } from './kvm/page_track.js';
export {
  VfioContainer, DirtyTracking, type MapRequest, type RangeRequest, type ContainerInfo,
} from './vfio/typed.js';
export type { EngineSnapshot, ContainerSnapshot, DmaSnapshot } from './vfio/inspect.js';
export type {
  SubsystemsSnapshot, KvmSnapshot, SlotSnapshot, IommufdSnapshot, IommufdObjectSnapshot, IoasidSetSnapshot,
  AcceleratorSnapshot,
} from './inspect_subsystems.js';
export { DirtyBitmap } from './core/dirty_bitmap.js';
export * from './export/index.js';
export { simulate, type SimResult, type SimHooks } from './sim/simulator.js';
export type { SimConfig } from './sim/config.js';
export { replayTrace, type ReadResult } from './sim/replay.js';
export { TraceError } from './sim/trace.js';
export { Client, type ClientReply, type ConnectOptions, type DmaUnmapHandler } from './server/client.js';
export { startServer, type Server, type ServerOptions } from './server/server.js';
export {
  Ioasid, type IdInfo, type IoasidNbArgs, type IoasidNotifier, type SetInfo,
} from './ioasid/ioasid.js';
export {
  Accelerator, type AcceleratorOptions, type AccelOp, type FailOp,
} from './accel/accelerator.js';
export { Sva, type SvaHandle } from './accel/sva.js';
