// What every subsystem plugs into the process model: open files (what an fd refers to), file
// mappings (what `proc.mmapFd` maps), and the device paths a subsystem answers `proc.open` for.
// Each subsystem's folder (src/vfio, src/kvm, src/iommufd, src/ioasid, src/accel) implements
// these; src/process.ts and src/engine.ts only dispatch to them.
import type { Process } from './process.js';

/** The argument of `proc.ioctl`: a number or bigint value, a device name, or a struct's bytes. */
export type IoctlArg = number | bigint | string | Uint8Array | undefined;

/**
 * An open file description. One class per kind of file, in its subsystem's folder. The fd table
 * holds one entry per fd; several fds (or mappings) may refer to one file.
 */
export interface OpenFile {
  /** The kind of file, e.g. 'vfio-container', 'vfio-group', 'vfio-device'. */
  readonly kind: string;
  /** The ioctl syscall on this file: a value >= 0, or -errno. Never throws for an errno outcome. */
  ioctl(proc: Process, request: number, arg: IoctlArg): number;
  /**
   * Drops the reference of one fd (`proc.close`, or `proc.exit` step 4). The file's release effects
   * run here when nothing else holds the file.
   */
  close(proc: Process): void;
  /**
   * Whether dropping this fd now would release state that a call in progress is still using (a
   * type1 container notifying its drivers): `proc.close` then answers -EDEADLK and changes
   * nothing. With `all`, every reference the process holds drops at once (`proc.exit`).
   */
  releaseBlocked?(all: boolean): boolean;
  /**
   * `proc.mmapFd(fd, offset, length)` after the process-level checks (offset page-aligned, fd open,
   * length > 0): a mapping of `pages` pages, or -errno. Files without it answer -ENODEV.
   */
  mmap?(proc: Process, offset: bigint, pages: number): FileMapping | number;
}

/** Bytes of a file mapped into a process by `proc.mmapFd`. `proc.read`/`proc.write` reach them. */
export interface FileMapping {
  /** Copies `length` bytes from `offset` within the mapping (in bounds: the process checked). */
  read(offset: number, length: number): Uint8Array;
  /** Stores `bytes` at `offset` within the mapping (in bounds). */
  write(offset: number, bytes: Uint8Array): void;
  /**
   * `proc.munmap` of exactly this mapping: 0 (the mapping is gone and has dropped its file
   * reference), or -errno with the mapping still in place (a kind the engine does not unmap).
   */
  unmap(): number;
  /** Removal at `proc.exit` step 2: like a successful unmap, for every kind of mapping. */
  release(): void;
  /** True once the file's device zapped the mapping: reads and writes there throw RangeError. */
  readonly zapped?: boolean;
}

/** A subsystem's share of the process model. */
export interface Subsystem {
  /** `proc.open(path)` for a path this subsystem owns: a new fd or -errno; undefined if not its path. */
  open?(proc: Process, path: string): number | undefined;
  /** `proc.exit` step 1: the process's address space is released (devices stop translating it). */
  mmRelease?(proc: Process): void;
  /**
   * `proc.exit` step 5, after every fd is closed: the mm may be freed (docs/conformance.md §13.3).
   */
  exitDone?(proc: Process): void;
  /** `engine.dispose()`: returns everything the subsystem holds in the Wasm core. */
  dispose?(): void;
}

/**
 * A device file that lives while its fd is open or a KVM-VFIO entry holds it (a group-path device
 * fd or a device cdev): `close` and `dropRef` each let go of one hold, and the last runs `release`.
 */
export abstract class KvmHeldFile {
  /** The fd is still open. */
  fdOpen = true;
  /** KVM-VFIO entries holding the file. */
  kvmRefs = 0;

  /** The fd closes; the file is released unless a KVM-VFIO entry still holds it. */
  close(): void {
    this.fdOpen = false;
    this.releaseIfUnused();
  }

  /** A KVM-VFIO entry lets go of the file. */
  dropRef(): void {
    this.kvmRefs--;
    this.releaseIfUnused();
  }

  private releaseIfUnused(): void {
    if (this.fdOpen || this.kvmRefs > 0) return;
    this.release();
  }

  /** What the file's release does, once nothing holds it. */
  protected abstract release(): void;
}
