// Setup E through the typed API: one process, one emulated group M in a type1v2 container, its
// device open with a dma_unmap op that records its calls.
import { createEngine } from '../../src/index.js';

export async function setupE() {
  const engine = await createEngine();
  const proc = engine.createProcess();
  const m = engine.createGroup({ kind: 'emulated' });
  const c = engine.openContainer(proc);
  c.attach(m);
  c.setIommu('type1v2');
  c.openDevice(m);
  const dev = m.devices[0];
  const calls: [bigint, bigint][] = [];
  dev.registerDmaUnmap((iova, size) => calls.push([iova, size]));
  const mem = proc.mmap(1n << 24n);
  return { engine, proc, m, c, dev, mem, calls };
}
