// The device-dirty-tracking part of the request table (docs/PROTOCOL.md §4, §6): a passthrough
// device's own DMA, translated by its IOMMU and recorded by its tracker, the HWPT's dirty bits and
// type1's bitmaps. Trackers and the IOMMU's dirty capability come with the group (CREATE_GROUP).
import { driverDevice, MAX_DATA, type Handler } from './ops_common.js';
import { Op, PErr } from './protocol.js';

/** The device DMA requests. */
export const deviceOps: Record<number, Handler> = {
  [Op.DEV_DMA_WRITE]: (host, s, r) => {
    const d = driverDevice(host, s, r.str());
    const iova = r.u64();
    const data = r.rest().slice();
    if (!r.ok) return [-PErr.EBADMSG];
    return [typeof d === 'number' ? d : d.dmaWrite(iova, data)];
  },
  [Op.DEV_DMA_READ]: (host, s, r) => {
    const d = driverDevice(host, s, r.str());
    const iova = r.u64();
    const len = r.u32();
    if (!r.ok) return [-PErr.EBADMSG];
    if (typeof d === 'number') return [d];
    if (len > MAX_DATA) return [-PErr.E2BIG];
    const got = d.dmaRead(iova, len);
    return typeof got === 'number' ? [got] : [0, got];
  },
};
