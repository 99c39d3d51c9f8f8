// Acceptance vectors of the other subsystems as scripts (script.ts): KVM V54, device-dirty V21,
// PASID V21 (the set chain) and V33/V34 (a connection's own PASID). Each expects a fresh
// engine or server (accelerator devIds, PASIDs and set ids start from the lowest).
import { uapi } from '../../src/uapi.js';
import { dmaMap, hex } from '../helpers/uapi_structs.js';
import { createDevice, deviceAttr, dirtyLog, region } from '../kvm/setup.js';
import type { Step } from './script.js';

const x = (n: bigint): string => `0x${n.toString(16)}`;
/** The first mmap of a fresh process, and the ones after it (the model hands out addresses upwards). */
export const MEM = 0x10_0000_0000n;
const b = (u: Uint8Array): { b: string } => ({ b: hex(u) });
const v = (n: number | bigint): { v: string } => ({ v: String(n) });

/** u32/u64 fields little-endian into `n` bytes. */
function le(n: number, fields: [number, 32 | 64, number | bigint][]): Uint8Array {
  const out = new Uint8Array(n);
  const d = new DataView(out.buffer);
  for (const [o, bits, val] of fields) {
    if (bits === 32) d.setUint32(o, Number(val), true);
    else d.setBigUint64(o, BigInt(val), true);
  }
  return out;
}

/** KVM vector V54 (setup KV + slot A + c0): node, tracking and the unlink callback through dev.kvm. */
export function kvmV54(dev: string): Step[] {
  const U = MEM;
  const buf = MEM + 0x201000n; // (after a guard page) holds the int32 fd for KVM_SET_DEVICE_ATTR, and the dirty bitmap
  const attr = (a: bigint): Step => ['ioctl', 8, uapi.KVM_SET_DEVICE_ATTR, b(deviceAttr(0, 1, a, buf))];
  const get: Step[] = [['ioctl', 4, uapi.KVM_GET_DIRTY_LOG, b(dirtyLog(0, buf + 0x100n))], ['read', x(buf + 0x100n), 8]];
  return [
    ['open', '/dev/kvm'], ['ioctl', 3, uapi.KVM_CREATE_VM, v(0)], ['mmap', 0x200000], ['mmap', 4096],
    ['ioctl', 4, uapi.KVM_SET_USER_MEMORY_REGION, b(region(0, 1, 0x100000n, 0x10000n, U))],
    ['ioctl', 4, uapi.KVM_CREATE_VCPU, v(0)],
    ['group', `kind=emulated,devices=${dev}`], ['open', '/dev/vfio/vfio'], ['open_group'],
    ['ioctl', 7, uapi.VFIO_GROUP_SET_CONTAINER, v(6)], ['ioctl', 6, uapi.VFIO_SET_IOMMU, v(uapi.VFIO_TYPE1v2_IOMMU)],
    ['ioctl', 4, uapi.KVM_CREATE_DEVICE, b(createDevice(4, 0, 0))],
    ['kvm_unlink', dev, '0x105'],
    ['write', x(buf), '07 00 00 00'], attr(1n),
    ['ioctl', 7, uapi.VFIO_GROUP_GET_DEVICE_FD, { s: dev }],
    ['kvm_node', dev], ['kvm', 'trackAdd', dev, '0x105'],
    ['vcpu_write', 5, '0x105008', '01 02 03 04 05 06 07 08'], ...get,
    attr(2n), ['kvm', 'trackCount', dev, '0x105'],
    ['vcpu_write', 5, '0x105008', '11 12 13 14 15 16 17 18'], ...get,
    ['vcpu_read', 5, '0x105008', 8], ['kvm', 'gfnToHva', dev, '0x103'],
    // the device keeps its KVM until closed (docs/conformance.md §19.9): a new node sees batch stores and the slot's removal
    ['kvm_node', dev], ['kvm', 'trackAdd', dev, '0x101'],
    ['vcpu_write_many', 5, ['0x100000', '0x101000'], '01 02 03 04 05 06 07 08', 4],
    ['ioctl', 4, uapi.KVM_SET_USER_MEMORY_REGION, b(region(0, 0, 0x100000n, 0n, U))],
    ['kvm', 'trackCount', dev, '0x101'],
  ];
}

/** Device-dirty vector V21 (setup L, started): four device writes, REPORT twice. */
export function deviceV21(dev: string): Step[] {
  const R = MEM; // the ranges array, then the report bitmap at R + 0x100
  const mem = MEM + 0x2000n; // after a guard page
  const start = le(32, [[0, 32, 32], [4, 32, 0x00020006], [8, 64, 0x1000], [16, 32, 1], [24, 64, R]]);
  const rep = le(40, [[0, 32, 40], [4, 32, 0x00010008], [8, 64, 0], [16, 64, 0x80000], [24, 64, 0x1000], [32, 64, R + 0x100n]]);
  // REPORT sets bits in the caller's buffer (V23): each report starts from a zeroed one
  const report: Step[] = [
    ['write', x(R + 0x100n), hex(new Uint8Array(16))], ['ioctl', 5, uapi.VFIO_DEVICE_FEATURE, b(rep)],
    ['read', x(R + 0x100n), 16],
  ];
  return [
    ['group', `kind=iommu,devices=${dev},dmaLogging=all`], ['open', '/dev/vfio/vfio'], ['open_group'],
    ['ioctl', 4, uapi.VFIO_GROUP_SET_CONTAINER, v(3)], ['ioctl', 3, uapi.VFIO_SET_IOMMU, v(uapi.VFIO_TYPE1v2_IOMMU)],
    ['mmap', 4096], ['mmap', 0x1000000],
    ['ioctl', 3, uapi.VFIO_IOMMU_MAP_DMA, b(dmaMap({ flags: 3, vaddr: mem, iova: 0n, size: 0x1000000n }))],
    ['ioctl', 4, uapi.VFIO_GROUP_GET_DEVICE_FD, { s: dev }],
    ['write', x(R), hex(le(16, [[0, 64, 0], [8, 64, 0x1000000]]))],
    ['ioctl', 5, uapi.VFIO_DEVICE_FEATURE, b(start)],
    ...['0x0', '0x3000', '0x3fff', '0x41000'].map((a): Step => ['dev_dma_write', dev, a, '00']),
    ...report, ...report,
    ['dev_dma_read', dev, '0x3fff', 1], ['dev_dma_write', dev, '0x1000000', '00'],
  ];
}

/** PASID vector V21 (setup P), the set chain's part: ALLOC ×3 notifies, FREE [1,3] notifies each. */
export function pasidV21(dev: string): Step[] {
  const req = (flags: number, min: number, max: number): Step =>
    ['ioctl', 3, uapi.VFIO_IOMMU_PASID_REQUEST, b(le(16, [[0, 32, 16], [4, 32, flags], [8, 32, min], [12, 32, max]]))];
  return [
    ['group', `kind=iommu,syswidePasid=1,devices=${dev}`], ['open', '/dev/vfio/vfio'], ['open_group'],
    ['ioasid_notifier', 1],
    ['ioctl', 4, uapi.VFIO_GROUP_SET_CONTAINER, v(3)], ['ioctl', 3, uapi.VFIO_SET_IOMMU, v(uapi.VFIO_TYPE1v2_IOMMU)],
    ['ioasid_notifier', 1],
    req(1, 1, 0xfffff), req(1, 1, 0xfffff), req(1, 1, 0xfffff),
    ['ioasid_notify', 2, uapi.IOASID_BIND], ['ioasid_notify', 2, 7],
    req(2, 1, 3),
  ];
}

/** Accelerator vectors V34 and V33 (setup A) for the connection's own PASID. */
export function accelV34(): Step[] {
  const V1 = MEM;
  return [
    ['accel', 'name=zip,api=hisi_qm_v2,queues=2,dusSize=8192'], ['accel', 'name=sec,queues=4,maxPasids=16,dusSize=0'],
    ['mmap', 0x4000], ['open', '/dev/zip-0'],
    ['accel_dma_write', '/dev/zip-0', 1, x(V1 + 0x1000n), '01 02'], ['read', x(V1 + 0x1000n), 2],
    ['accel_dma_write', '/dev/zip-0', 1, x(V1 + 0x3fffn), '03 04'], ['read', x(V1 + 0x3fffn), 1],
    ['accel_dma_read', '/dev/zip-0', 1, x(V1 + 0x1000n), 2], ['accel_dma_read', '/dev/zip-0', 1, '0x7ffffffff000', 1],
    ['sva_bind', '/dev/sec-1'], ['sva_pasid', 1], ['sva_bind', '/dev/sec-1'], ['sva_unbind', 1],
    ['accel_dma_write', '/dev/sec-1', 1, x(V1), '05'], ['sva_unbind', 1],
    ['accel_dma_write', '/dev/sec-1', 1, x(V1), '05'], ['sva_unbind', 1], ['sva_pasid', 1],
    // a job submitted through the queue's DUS mapping, taken by the device, completed in MMIO
    ['ioctl', 3, uapi.UACCE_CMD_START_Q, null], ['mmap_fd', 3, '0x0', 4096], ['mmap_fd', 3, '0x1000', 8192],
    ['write', x(MEM + 0x7000n), 'de ad be ef'], ['accel_region_read', '/dev/zip-0', 0, 1, 0, 4],
    ['accel_region_write', '/dev/zip-0', 0, 0, 8, '01'], ['read', x(MEM + 0x5000n + 8n), 1],
    ['accel_region_read', '/dev/zip-0', 1, 1, 0, 4], ['accel_region_read', '/dev/zip-0', 0, 2, 0, 4],
  ];
}

/** Device-dirty vector V52 (setup F): a cdev bound to iommufd, HWPT dirty tracking, device writes. */
export function iommufdV52(dev: string): Step[] {
  const V = MEM;
  const B = MEM + 0x81000n; // after a guard page
  const get = le(48, [[0, 32, 48], [4, 32, 3], [16, 64, 0x100000], [24, 64, 0x80000], [32, 64, 0x1000], [40, 64, B]]);
  const harvest: Step[] = [
    ['write', x(B), hex(new Uint8Array(16))], ['ioctl', 3, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, b(get)], ['read', x(B), 16],
  ];
  return [
    ['group', `kind=iommu,devices=${dev},iommuDirtyTracking=1`], ['open', '/dev/iommu'],
    ['ioctl', 3, uapi.IOMMU_IOAS_ALLOC, b(le(12, [[0, 32, 12]]))],
    ['open', '/dev/vfio/devices/vfio0'],
    ['ioctl', 4, uapi.VFIO_DEVICE_BIND_IOMMUFD, b(le(16, [[0, 32, 16], [8, 32, 3]]))],
    ['ioctl', 3, uapi.IOMMU_HWPT_ALLOC, b(le(48, [[0, 32, 48], [4, 32, 2], [8, 32, 2], [12, 32, 1]]))],
    ['ioctl', 4, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, b(le(12, [[0, 32, 12], [8, 32, 3]]))],
    ['mmap', 0x80000], ['mmap', 4096],
    ['ioctl', 3, uapi.IOMMU_IOAS_MAP, b(le(40, [[0, 32, 40], [4, 32, 7], [8, 32, 1], [16, 64, V], [24, 64, 0x80000], [32, 64, 0x100000]]))],
    ['ioctl', 3, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, b(le(16, [[0, 32, 16], [4, 32, 1], [8, 32, 3]]))],
    ...['0x100000', '0x102000', '0x140000'].map((a): Step => ['dev_dma_write', dev, a, '00']),
    ...harvest, ...harvest,
  ];
}
