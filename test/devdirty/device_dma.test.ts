// Devices and their own DMA (docs/conformance.md §20.1, §20.2): device options, dev.dmaWrite /
// dev.dmaRead through type1 and iommufd, IOMMU faults, and what a successful write marks.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import { hex, P, rep, setupF, setupL, struct, userBuffer } from './helpers.js';

const { EINVAL, EFAULT, ENODEV } = errno;

describe('§2.1 device options', () => {
  it('createGroup throws RangeError for each bad option', async () => {
    const engine = await createEngine();
    const bad: object[] = [
      { kind: 'emulated', devices: [{ name: 'a', dmaLogging: true }] },
      { kind: 'emulated', iommuDirtyTracking: true },
      { kind: 'emulated', hugeIoptes: true },
      { devices: [{ name: 'a', dmaLogging: { maxRanges: 0 } }] },
      { devices: [{ name: 'a', dmaLogging: { maxRanges: 257 } }] },
      { devices: [{ name: 'a', dmaLogging: { pageSizes: 0n } }] },
      { devices: [{ name: 'a', dmaLogging: { pageSizes: 0x1800n } }] },
      { devices: [{ name: 'a', dmaLogging: { addressSpaceBits: [13, 12] } }] },
      { devices: [{ name: 'a', dmaLogging: { addressSpaceBits: [-1, 12] } }] },
      { devices: [{ name: 'a', dmaLogging: { addressSpaceBits: [0, 65] } }] },
      { devices: [{ name: 'a', migrationFlags: 8 }] },
      { devices: [{ name: 'a', migrationFlags: 2 }] },
    ];
    for (const o of bad) expect(() => engine.createGroup(o as never), JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))).toThrow(RangeError);
    // a failed createGroup uses no device index
    expect(engine.createGroup({ kind: 'iommu' }).devices[0].cdevPath).toBe('/dev/vfio/devices/vfio0');
  });

  it('accepted option shapes', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({
      kind: 'iommu',
      devices: ['plain', { name: 'm', migrationFlags: 5 }, { name: 't', dmaLogging: { maxRanges: 256, pageSizes: 0x1000n, addressSpaceBits: [0, 64] } }],
    });
    expect(g.devices.map((d) => d.state.migrationFlags)).toEqual([0, 5, 3]);
    expect(g.devices.map((d) => d.state.tracker?.maxRanges ?? null)).toEqual([null, null, 256]);
    expect(() => engine.createGroup({ devices: [{ name: 'x' }, 'x'] })).toThrow(RangeError);
    expect(() => engine.createGroup({ devices: [{ name: '' }] as never })).toThrow(TypeError);
  });
});

describe('§2.4 a device\'s own DMA', () => {
  it('type1: bytes land at the dma vaddr; reads see them; faults write nothing', async () => {
    const s = await setupL({ map: P(0x10) });
    const { dev, proc } = s;
    expect(dev.dmaWrite(0x1ffen, Uint8Array.of(1, 2, 3, 4))).toBe(0);
    expect(hex(dev.dmaRead(0x1ffen, 4) as Uint8Array)).toBe('01 02 03 04');
    expect(dev.dmaWrite(P(0x10) - 2n, Uint8Array.of(9, 9, 9))).toBe(-EFAULT);
    expect(hex(dev.dmaRead(P(0x10) - 2n, 2) as Uint8Array)).toBe('00 00');
    expect(dev.dmaRead(P(0x10), 1)).toBe(-EFAULT);
    expect(dev.dmaWrite(0n, new Uint8Array(0))).toBe(-EINVAL);
    expect(dev.dmaRead(0n, 0)).toBe(-EINVAL);
    expect(dev.dmaWrite((1n << 64n) - 1n, new Uint8Array(2))).toBe(-EFAULT);
    void proc;
  });

  it('type1: a range may span adjacent dmas; permissions per dma', async () => {
    const s = await setupL({ map: P(4) });
    const v = s.proc.mmap(P(4));
    const ro = struct(32, [[0, 32], [4, 1], [8, v, 8], [16, P(4), 8], [24, P(4), 8]]);
    expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_MAP_DMA, ro)).toBe(0);
    expect(s.dev.dmaWrite(P(4) - 1n, Uint8Array.of(7, 7))).toBe(-EFAULT);
    expect(s.dev.dmaWrite(P(4) - 1n, Uint8Array.of(7))).toBe(0);
    s.proc.write(v, Uint8Array.of(8));
    expect(hex(s.dev.dmaRead(P(4) - 1n, 2) as Uint8Array)).toBe('07 08');
  });

  it('DMA is blocked for a group in no container and for emulated devices', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu' });
    expect(g.devices[0].dmaWrite(0n, new Uint8Array(1))).toBe(-EFAULT);
    const m = engine.createGroup({ kind: 'emulated' });
    expect(m.devices[0].dmaWrite(0n, new Uint8Array(1))).toBe(-EINVAL);
    expect(m.devices[0].dmaRead(0n, 1)).toBe(-EINVAL);
  });

  it('iommufd: bytes land at the area user_va; a detached device faults', async () => {
    const s = await setupF();
    expect(s.dev.dmaWrite(0x100010n, Uint8Array.of(0xab))).toBe(0);
    expect(hex(s.proc.read(s.V + 0x10n, 1))).toBe('ab');
    expect(s.proc.ioctl(s.C, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, struct(8, [[0, 8]]))).toBe(0);
    expect(s.dev.dmaRead(0x100010n, 1)).toBe(-EFAULT);
  });

  it('a cdev-bound device is in no container: pinPages and dmaRw are -EINVAL', async () => {
    const s = await setupF();
    s.dev.registerDmaUnmap(() => {});
    expect(s.dev.pinPages(0x100000n, 1, 1)).toBe(-EINVAL);
    expect(s.dev.dmaRw(0x100000n, new Uint8Array(1), true)).toBe(-EINVAL);
  });
});

describe('§2.5 what a write marks', () => {
  it('tracker and type1 both record one write; dmaRead marks nothing', async () => {
    const s = await setupL({ map: P(0x40) });
    expect(s.START(0x1000n, [[0n, P(0x40)]]).ret).toBe(0);
    expect(s.dev.dmaRead(P(3), 1)).toBeInstanceOf(Uint8Array);
    expect(s.REP().hex).toBe(rep(0, 8));
  });

  it('a write before the group\'s promotion appears in the first type1 report after it (§6 row 19)', async () => {
    const s = await setupL({ map: P(0x40) });
    expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 8], [4, 1]]))).toBe(0);
    expect(s.W(P(1))).toBe(0);
    s.dev.registerDmaUnmap(() => {});
    expect(s.dev.pinPages(P(5), 1, uapi.IOMMU_READ)).toBe(1);
    const data = userBuffer(s.proc, 8);
    const b = struct(48, [[0, 48], [4, 4], [16, P(0x40), 8], [24, 0x1000n, 8], [32, 8n, 8], [40, data, 8]]);
    expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_DIRTY_PAGES, b)).toBe(0);
    expect(hex(s.proc.read(data, 8))).toBe('22 00 00 00 00 00 00 00');
  });

  it('a tracker and a HWPT are independent: a write may be recorded by both', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true, devices: [{ name: 'd', dmaLogging: true }] });
    const proc = engine.createProcess();
    const { Iommufd, bind, attach } = await import('./helpers.js');
    const I = proc.open('/dev/iommu');
    const fd = new Iommufd(proc, I);
    expect(fd.ioasAlloc()).toBe(1);
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, I)).toBe(2);
    expect(fd.hwptAlloc(2, 2, 1)).toBe(3);
    expect(attach(proc, C, 3)).toBe(3);
    const V = proc.mmap(0x40000);
    expect(fd.map(1, 0x100000n, 0x40000n, V).ret).toBe(0);
    expect(fd.setDirty(3)).toBe(0);
    const ranges = proc.mmap(16);
    proc.write(ranges, struct(16, [[0, 0x100000n, 8], [8, 0x40000n, 8]]));
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_FEATURE, struct(32, [[0, 32], [4, 0x00020006], [8, 0x1000n, 8], [16, 1], [24, ranges, 8]]))).toBe(0);
    expect(g.devices[0].dmaWrite(0x101000n, new Uint8Array(1))).toBe(0);
    expect(fd.get(3, 0x100000n, 0x40000n, 0x1000n).hex).toBe(`02 ${rep(0, 7)}`);
    const data = userBuffer(proc, 8);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_FEATURE, struct(40, [[0, 40], [4, 0x00010008], [8, 0x100000n, 8], [16, 0x40000n, 8], [24, 0x1000n, 8], [32, data, 8]]))).toBe(0);
    expect(hex(proc.read(data, 8))).toBe(`02 ${rep(0, 7)}`);
  });
});

describe('§7 close, exit and mmapFd', () => {
  it('mmapFd on a device, cdev or iommufd fd is -ENODEV', async () => {
    const s = await setupF();
    const C2 = s.proc.open(s.dev.cdevPath!);
    for (const fd of [s.I, s.C, C2]) expect(s.proc.mmapFd(fd, 0n, 4096)).toBe(-BigInt(ENODEV));
    const l = await setupL();
    expect(l.proc.mmapFd(l.D, 0n, 4096)).toBe(-BigInt(ENODEV));
  });

  it('exit closes the iommufd fd before the bound cdev: the context is released with the unbind', async () => {
    const s = await setupF();
    const before = s.engine.memoryInUse();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    expect(s.proc.exit()).toBe(0);
    expect(s.engine.memoryInUse()).toBeLessThan(before);
    const p2 = s.engine.createProcess();
    expect(p2.open(`/dev/vfio/${s.g.id}`)).toBeGreaterThan(0);
    expect(s.dev.dmaWrite(0x100000n, new Uint8Array(1))).toBe(-EFAULT);
  });

  it('closing the iommufd fd while a device is bound keeps the context until the unbind', async () => {
    const s = await setupF();
    expect(s.proc.close(s.I)).toBe(0);
    expect(s.D(0x100000n)).toBe(0); // still attached through the held context
    expect(s.proc.close(s.C)).toBe(0);
    expect(s.D(0x100000n)).toBe(-EFAULT);
    const I2 = s.proc.open('/dev/iommu');
    const C2 = s.proc.open(s.dev.cdevPath!);
    const { bind } = await import('./helpers.js');
    expect(bind(s.proc, C2, I2)).toBe(1);
  });

  it('closing a bound cdev fd closes the device: its logging stops', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', devices: [{ name: 'd', dmaLogging: true }] });
    const proc = engine.createProcess();
    const { bind } = await import('./helpers.js');
    const I = proc.open('/dev/iommu');
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, I)).toBe(1);
    const ranges = proc.mmap(16);
    proc.write(ranges, struct(16, [[0, 0n, 8], [8, 0x1000n, 8]]));
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_FEATURE, struct(32, [[0, 32], [4, 0x00020006], [8, 0x1000n, 8], [16, 1], [24, ranges, 8]]))).toBe(0);
    expect(g.devices[0].state.log).not.toBeNull();
    expect(proc.close(C)).toBe(0);
    expect(g.devices[0].state.log).toBeNull();
  });
});
