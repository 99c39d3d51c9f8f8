// A passthrough device's own DMA (docs/conformance.md §20.2): translated by its group's IOMMU,
// through a type1 container's dmas or an iommufd HWPT's IOAS areas; all or nothing (an IOMMU
// fault writes, reads and marks nothing); a write marks the device's tracker, the translating
// HWPT's IOPTE dirty bits and type1's bitmaps, whichever are on.
import { EFAULT, EINVAL, ENOMEM } from '../../assembly/constants.js';
import type { Hwpt } from '../iommufd/hwpt.js';
import { IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE } from '../iommufd/uapi.js';
import type { Process } from '../process.js';
import { U64_MAX } from '../u64.js';
import { IOMMU_READ, IOMMU_WRITE, type Dma } from './dma.js';
import type { VfioDevice } from './group.js';
import type { Type1 } from './type1.js';

/** One translated piece of a DMA: [iova, iova+n) lands at vaddr in owner's memory. */
interface Piece {
  readonly iova: bigint;
  readonly n: number;
  readonly owner: Process;
  readonly vaddr: bigint;
  /** The type1 dma it went through, if any. */
  readonly dma?: Dma;
}

/** What translates a device's DMA now: a type1 driver, an iommufd HWPT, or nothing (blocked). */
type Translator = { t: Type1 } | { hwpt: Hwpt } | null;

/** The group's translation (docs/conformance.md §20.2). */
function translatorOf(dev: VfioDevice): Translator {
  const g = dev.group;
  const t = g.container?.iommu;
  if (g.attached && t) return { t };
  for (const d of g.devices) {
    const h = d.state.binding?.hwpt;
    if (h) return { hwpt: h };
  }
  return null;
}

/**
 * Every byte of [iova, iova+len) translated with `write` or read permission: the pieces, or null
 * for an IOMMU fault (no mapping, no permission, an exiting owner, unmapped user memory).
 */
function translate(tr: Translator, iova: bigint, len: number, write: boolean): Piece[] | null {
  if (!tr) return null;
  const out: Piece[] = [];
  let a = iova;
  let left = BigInt(len);
  while (left > 0n) {
    let piece: Piece;
    if ('t' in tr) {
      const d = tr.t.find(a);
      if (!d || !(d.prot & (write ? IOMMU_WRITE : IOMMU_READ))) return null;
      const n = d.last - a + 1n < left ? d.last - a + 1n : left;
      piece = { iova: a, n: Number(n), owner: d.owner, vaddr: d.vaddr + (a - d.iova), dma: d };
    } else {
      const area = tr.hwpt.ioas.iopt.areaAt(a);
      if (!area || !(area.prot & (write ? IOMMU_IOAS_MAP_WRITEABLE : IOMMU_IOAS_MAP_READABLE))) return null;
      const n = area.last - a + 1n < left ? area.last - a + 1n : left;
      piece = { iova: a, n: Number(n), owner: area.proc, vaddr: area.userVa + (a - area.iova) };
    }
    if (piece.owner.exited || !piece.owner.isMapped(piece.vaddr, BigInt(piece.n))) return null;
    out.push(piece);
    a += BigInt(piece.n);
    left -= BigInt(piece.n);
  }
  return out;
}

/** The common argument checks: 0, or -EINVAL / -EFAULT. */
function checkDma(dev: VfioDevice, iova: bigint, len: number): number {
  if (dev.group.kind !== 'iommu' || len === 0) return -EINVAL;
  if (iova < 0n || iova > U64_MAX || iova + BigInt(len) - 1n > U64_MAX) return -EFAULT;
  return 0;
}

/** dev.dmaWrite: 0, -EINVAL (emulated device, empty write), -EFAULT (IOMMU fault) or -ENOMEM. */
export function dmaWrite(dev: VfioDevice, iova: bigint, data: Uint8Array): number {
  if (typeof iova !== 'bigint' || !(data instanceof Uint8Array)) {
    throw new TypeError('dmaWrite(iova: bigint, data: Uint8Array)');
  }
  const c = checkDma(dev, iova, data.length);
  if (c < 0) return c;
  const tr = translatorOf(dev);
  const pieces = translate(tr, iova, data.length, true);
  if (!pieces) return -EFAULT;
  const core = dev.group.engine.core;
  // Stage the bytes and frame every destination first, so the copy below cannot fail half-way.
  const buf = core.alloc(data.length);
  if (buf < 0) return -ENOMEM;
  try {
    for (const p of pieces) if (p.owner.um.reserve(p.vaddr, p.n) < 0) return -ENOMEM;
    core.u8().set(data, buf);
    let off = 0;
    for (const p of pieces) {
      p.owner.um.writeFrom(p.vaddr, buf + off, p.n); // frames reserved: cannot fail
      off += p.n;
    }
  } finally {
    core.free(buf);
  }
  const last = iova + BigInt(data.length) - 1n;
  markTracker(dev, iova, last);
  if (tr && 'hwpt' in tr) tr.hwpt.markWrite(iova, last);
  if (tr && 't' in tr && tr.t.tracking) {
    const t = tr.t;
    for (const p of pieces) {
      const d = p.dma!;
      const lo = t.bitOf(d.iova, p.iova);
      d.bitmap!.setRange(lo, t.bitOf(d.iova, p.iova + BigInt(p.n) - 1n) - lo + 1);
    }
  }
  return 0;
}

/**
 * Marks the device's log for the written bytes inside its tracked ranges (docs/conformance.md
 * §20.2).
 */
function markTracker(dev: VfioDevice, iova: bigint, last: bigint): void {
  const log = dev.state.log;
  if (!log) return;
  for (const [s, l] of log.ranges) {
    if (s > last || l < iova) continue;
    log.units.mark(iova > s ? iova : s, last < l ? last : l);
  }
}

/** dev.dmaRead: the bytes, or -EINVAL (emulated device, length 0) / -EFAULT (IOMMU fault). */
export function dmaRead(dev: VfioDevice, iova: bigint, length: number): Uint8Array | number {
  if (typeof iova !== 'bigint' || !Number.isInteger(length) || length < 0) {
    throw new TypeError('dmaRead(iova: bigint, length: non-negative integer)');
  }
  const c = checkDma(dev, iova, length);
  if (c < 0) return c;
  const pieces = translate(translatorOf(dev), iova, length, false);
  if (!pieces) return -EFAULT;
  const out = new Uint8Array(length);
  let off = 0;
  for (const p of pieces) {
    const r = p.owner.um.read(p.vaddr, p.n);
    if (typeof r === 'number') return r;
    out.set(r, off);
    off += p.n;
  }
  return out;
}
