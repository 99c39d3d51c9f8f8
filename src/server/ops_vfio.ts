// The vendor-driver part of the request table for type1 (docs/PROTOCOL.md §6): dma_unmap
// registration as event 0x4001, pinning, and vfio_dma_rw.
import { driverDevice, holdsGroup, MAX_DATA, type Handler } from './ops_common.js';
import { EVENT_DMA_UNMAP, Op, PErr, Writer } from './protocol.js';

const registerDmaUnmap: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  if (typeof d === 'number' || !r.ok) return [typeof d === 'number' ? d : -PErr.EBADMSG];
  const name = new Writer().str(d.name).done();
  d.registerDmaUnmap((iova, size) => {
    // a registration serves only while its connection holds the group
    if (s.proc && !s.proc.exited && holdsGroup(s.proc, d.group)) {
      host.deliver(s, EVENT_DMA_UNMAP, new Writer().u64(iova).u64(size).bytes(name).done());
    }
  });
  for (const o of host.sessions.values()) if (o !== s) o.registered.delete(d);
  s.registered.add(d);
  return [0];
};

const pinPages: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  const iova = r.u64();
  const npage = r.u32() | 0;
  const prot = r.u32() | 0;
  const want = r.u32();
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof d === 'number') return [d];
  const pfns = want && npage > 0 && npage <= 1 << 16 ? new BigUint64Array(npage) : undefined;
  const ret = d.pinPages(iova, npage, prot, pfns);
  return ret > 0 && pfns ? [ret, new Uint8Array(pfns.buffer, 0, ret * 8)] : [ret];
};

const unpinPages: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  const iova = r.u64();
  const npage = r.u32() | 0;
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof d === 'number') return [d];
  d.unpinPages(iova, npage);
  return [0];
};

const dmaRw: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  const iova = r.u64();
  const write = r.u32();
  const length = r.u32();
  const data = write ? r.rest() : new Uint8Array(length);
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof d === 'number') return [d];
  if (!write && length > MAX_DATA) return [-PErr.E2BIG];
  const buf = write ? data.slice() : data;
  const ret = d.dmaRw(iova, buf, write !== 0);
  return ret === 0 && !write ? [0, buf] : [ret];
};

/** The type1 vendor-driver requests. */
export const vfioOps: Record<number, Handler> = {
  [Op.DEV_REGISTER_DMA_UNMAP]: registerDmaUnmap,
  [Op.DEV_PIN_PAGES]: pinPages,
  [Op.DEV_UNPIN_PAGES]: unpinPages,
  [Op.DEV_DMA_RW]: dmaRw,
};
