"""Runs a script of steps (test/server/script.ts) through the Python client; prints JSON results.

usage: run_script.py SOCKET SCRIPT.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'clients', 'python'))
import vfio_dirty  # noqa: E402


def h(b):
    return ' '.join('%02x' % x for x in b)


def unh(s):
    return bytes(int(x, 16) for x in s.split())


def rows(r):
    return [[str(r)] if isinstance(r, int) else ['0', h(r)]]


def subsystem_step(c, s, out, state):
    """The KVM, device-DMA, accelerator and IOASID steps."""
    k = s[0]
    if k == 'vcpu_write':
        return [[str(c.vcpu_write(s[1], int(s[2], 0), unh(s[3])))]]
    if k == 'vcpu_write_guest':
        return [[str(c.vcpu_write_guest(s[1], int(s[2], 0), unh(s[3])))]]
    if k == 'vcpu_write_many':
        return [[str(c.vcpu_write_many(s[1], [int(g, 0) for g in s[2]], unh(s[3]), s[4]))]]
    if k == 'vcpu_read':
        return rows(c.vcpu_read(s[1], int(s[2], 0), s[3]))
    if k == 'kvm':
        fn = {'trackAdd': c.kvm_track_add, 'trackRemove': c.kvm_track_remove,
              'trackCount': c.kvm_track_count, 'gfnToHva': c.kvm_gfn_to_hva}[s[1]]
        return [[str(fn(s[2], int(s[3], 0)))]]
    if k == 'kvm_node':
        name = s[1]
        return [[str(c.register_kvm_node(
            name,
            track_write=lambda cl, gpa, data: out.append(['track_write', name, str(gpa), h(data)]),
            remove_region=lambda cl, gfn, nr: out.append(['remove_region', name, str(gfn), str(nr)])))]]
    if k == 'kvm_unlink':
        name, gfn = s[1], s[2]

        def unlink(cl):
            out.append(['unlink', name])
            if gfn is not None:
                out.append([str(cl.kvm_track_remove(name, int(gfn, 0)))])
                out.append([str(cl.unregister_kvm_node(name))])
        return [[str(c.register_kvm_unlink(name, unlink))]]
    if k == 'dev_dma_write':
        return [[str(c.dev_dma_write(s[1], int(s[2], 0), unh(s[3])))]]
    if k == 'dev_dma_read':
        return rows(c.dev_dma_read(s[1], int(s[2], 0), s[3]))
    if k == 'accel':
        r = c.create_accelerator(s[1])
        return [['accel', str(r) if isinstance(r, int) else r[1]]]
    if k == 'sva_bind':
        return [[str(c.sva_bind(s[1]))]]
    if k == 'sva_unbind':
        return [[str(c.sva_unbind(s[1]))]]
    if k == 'sva_pasid':
        return [[str(c.sva_get_pasid(s[1]))]]
    if k == 'accel_dma_write':
        return [[str(c.accel_dma_write(s[1], s[2], int(s[3], 0), unh(s[4])))]]
    if k == 'accel_dma_read':
        return rows(c.accel_dma_read(s[1], s[2], int(s[3], 0), s[4]))
    if k == 'ioasid_notifier':
        ret = s[1]

        def nb(cl, event, ioasid, sid):
            out.append(['ioasid', str(event), str(ioasid), str(sid)])
            return ret
        return [[str(c.add_ioasid_notifier(nb))]]
    if k == 'accel_region_read':
        return rows(c.accel_region_read(s[1], s[2], s[3], s[4], s[5]))
    if k == 'accel_region_write':
        return [[str(c.accel_region_write(s[1], s[2], s[3], s[4], unh(s[5])))]]
    if k == 'mmap_fd':
        return [[str(c.mmap_fd(s[1], int(s[2], 0), s[3]))]]
    if k == 'ioasid_notify':
        return [[str(c.ioasid_notify(s[1], s[2]))]]
    raise ValueError('unknown step %r' % k)


def main():
    c = vfio_dirty.Client(sys.argv[1])
    steps = json.load(open(sys.argv[2]))
    out = []
    last_group = 0
    state = {}
    for s in steps:
        k = s[0]
        if k == 'group':
            last_group = c.create_group(s[1])
            out.append(['group'])
        elif k == 'open_group':
            out.append([str(c.open('/dev/vfio/%d' % last_group))])
        elif k == 'open':
            out.append([str(c.open(s[1]))])
        elif k == 'close':
            out.append([str(c.close(s[1]))])
        elif k == 'ioctl':
            a = s[3]
            if a is not None and 'b' in a:
                buf = bytearray(unh(a['b']))
                r = c.ioctl(s[1], s[2], buf)
                out.append([str(r), h(buf)])
            else:
                arg = None if a is None else int(a['v'], 0) if 'v' in a else a['s']
                out.append([str(c.ioctl(s[1], s[2], arg))])
        elif k == 'mmap':
            out.append([str(c.mmap(s[1]))])
        elif k == 'read':
            r = c.read(int(s[1], 0), s[2])
            out.append([str(r)] if isinstance(r, int) else ['0', h(r)])
        elif k == 'write':
            out.append([str(c.write(int(s[1], 0), unh(s[2])))])
        elif k == 'register':
            name = s[1]

            def handler(cl, iova, size, name=name):
                out.append(['event', name, str(iova), str(size)])
                pages = size >> 12
                for o in range(0, pages, 512):
                    cl.unpin_pages(name, iova + o * 4096, min(512, pages - o))
            out.append([str(c.register_dma_unmap(name, handler))])
        elif k == 'pin':
            out.append([str(c.pin_pages(s[1], int(s[2], 0), s[3], s[4]))])
        elif k == 'unpin':
            out.append([str(c.unpin_pages(s[1], int(s[2], 0), s[3]))])
        elif k == 'dma_write':
            out.append([str(c.dma_rw(s[1], int(s[2], 0), unh(s[3]), True))])
        elif k == 'dma_read':
            r = c.dma_rw(s[1], int(s[2], 0), s[3], False)
            out.append([str(r)] if isinstance(r, int) else ['0', h(r)])
        else:
            out.extend(subsystem_step(c, s, out, state))
    json.dump(out, sys.stdout)
    c.close_connection()


main()
