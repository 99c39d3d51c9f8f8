// Write tracking (arch/x86/kvm/mmu/page_track.c as of v6.6): per-gfn u16 counts kept sparse in the
// core (assembly/kvm_sparse.ts), and notifier nodes told of every emulated store and of every
// slot deletion (docs/conformance.md §19.7).
import { EEXIST, EINVAL, ESRCH } from '../../assembly/constants.js';
import { checkU64 } from './args.js';
import { callbackScope } from './callbacks.js';
import type { Kvm } from './kvm.js';
import { slotOf, type Memslot } from './memslot.js';

/** A page-track notifier node (struct kvm_page_track_notifier_node). */
export interface PageTrackNotifierNode {
  /** After an emulated store of `bytes` bytes at gpa (memory updated, page recorded). */
  trackWrite?(gpa: bigint, data: Uint8Array, bytes: number): void;
  /** After the slot [gfn, gfn + nrPages) was deleted. */
  trackRemoveRegion?(gfn: bigint, nrPages: number): void;
}

/** The address-space-0 slot of gfn and the page index, or an errno (-ESRCH, -EINVAL). */
function lookup(kvm: Kvm, gfn: bigint): [Memslot, number] | number {
  checkU64(gfn, 'gfn');
  if (kvm.destroyed) return -ESRCH;
  const s = slotOf(kvm, 0, gfn);
  if (!s) return -EINVAL;
  return [s, Number(gfn - s.base)];
}

/**
 * writeTrackAddGfn: the count goes up (staying at 65535) and the page is protected: 0, -EINVAL
 * without an address-space-0 slot, -ESRCH.
 */
export function writeTrackAdd(kvm: Kvm, gfn: bigint): number {
  const r = lookup(kvm, gfn);
  if (typeof r === 'number') return r;
  return kvm.core.x.kvm_track_add(r[0].handle, r[1], 1);
}

/**
 * writeTrackRemoveGfn: the count goes down (staying at 0), protection unchanged: 0, -EINVAL,
 * -ESRCH.
 */
export function writeTrackRemove(kvm: Kvm, gfn: bigint): number {
  const r = lookup(kvm, gfn);
  if (typeof r === 'number') return r;
  return kvm.core.x.kvm_track_add(r[0].handle, r[1], -1);
}

/** The count, -EINVAL, -ESRCH. */
export function writeTrackCount(kvm: Kvm, gfn: bigint): number {
  const r = lookup(kvm, gfn);
  if (typeof r === 'number') return r;
  return kvm.core.x.kvm_track_count(r[0].handle, r[1]);
}

/** Whether gfn is write-tracked. */
export function gfnIsWriteTracked(kvm: Kvm, gfn: bigint): boolean {
  const r = lookup(kvm, gfn);
  return typeof r !== 'number' && kvm.core.x.kvm_track_count(r[0].handle, r[1]) > 0;
}

/** Registering: the node goes to the head of the list and takes a VM reference. */
export function pageTrackRegister(kvm: Kvm, node: PageTrackNotifierNode): number {
  if (typeof node !== 'object' || node === null) throw new TypeError('a page-track node must be an object');
  if (kvm.destroyed) return -ESRCH;
  if (kvm.nodes.includes(node)) return -EEXIST;
  kvm.nodes.unshift(node);
  kvm.get();
  return 0;
}

/** Unregistering: removes a registered node and drops its reference (the VM may be destroyed). */
export function pageTrackUnregister(kvm: Kvm, node: PageTrackNotifierNode): void {
  const i = kvm.nodes.indexOf(node);
  if (i < 0) return;
  kvm.nodes.splice(i, 1);
  kvm.put();
}

/** trackWrite on every node that has it, newest first; the first exception, if any. */
export function notifyWrite(kvm: Kvm, gpa: bigint, data: Uint8Array, first: unknown): unknown {
  const calls: (() => void)[] = [];
  for (const n of kvm.nodes) {
    if (n.trackWrite) calls.push(() => n.trackWrite!(gpa, data.slice(), data.length));
  }
  return callbackScope(kvm.engine).runAll('track', calls, first);
}
