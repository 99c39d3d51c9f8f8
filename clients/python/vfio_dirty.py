"""Client of `vfio-dirty serve` (docs/PROTOCOL.md), standard library only.

A connection is a process of the engine: open device files, issue ioctls with the kernel's struct
bytes, read and write process memory, and, as a vendor driver of a group it holds, pin pages, do
DMA and answer dma_unmap callbacks.

    c = Client('/run/vfio-dirty.sock')
    fd = c.open('/dev/vfio/vfio')
    ret = c.ioctl(fd, VFIO_GET_API_VERSION)
    buf = bytearray(struct_bytes); ret = c.ioctl(fd, VFIO_IOMMU_MAP_DMA, buf)  # buf updated in place

Calls return what the kernel returns: a value >= 0 or -errno; they never raise for an errno.
"""
import mmap as _mmap
import os
import socket
import struct

PROTOCOL_VERSION = 1
MAGIC = 0x59444656
HEADER = struct.Struct('<IHHII')
REPLY_BIT = 0x8000
EVENT_DMA_UNMAP = 0x4001
EVENT_KVM_TRACK_WRITE, EVENT_KVM_TRACK_REMOVE_REGION, EVENT_KVM_UNLINK = 0x4002, 0x4003, 0x4004
EVENT_IOASID = 0x4005
U64_MAX = (1 << 64) - 1

OP_HELLO, OP_OPEN, OP_CLOSE, OP_IOCTL, OP_MMAP, OP_MMAP_FD, OP_MUNMAP = 1, 2, 3, 4, 5, 6, 7
OP_READ_MEM, OP_WRITE_MEM, OP_SHM_FROM_MEM, OP_SHM_TO_MEM, OP_CREATE_GROUP = 8, 9, 10, 11, 12
OP_DEV_REGISTER_DMA_UNMAP, OP_DEV_PIN_PAGES, OP_DEV_UNPIN_PAGES, OP_DEV_DMA_RW = 13, 14, 15, 16
OP_EVENT_DONE, OP_STATS, OP_REMOVE_GROUP = 17, 18, 19
OP_VCPU_WRITE, OP_VCPU_READ, OP_VCPU_WRITE_GUEST, OP_VCPU_WRITE_MANY = 20, 21, 22, 23
OP_DEV_KVM_TRACK_ADD, OP_DEV_KVM_TRACK_REMOVE, OP_DEV_KVM_TRACK_COUNT = 24, 25, 26
OP_DEV_KVM_GFN_TO_HVA, OP_DEV_KVM_REGISTER_NODE, OP_DEV_KVM_UNREGISTER_NODE = 27, 28, 29
OP_DEV_REGISTER_KVM_UNLINK, OP_DEV_DMA_WRITE, OP_DEV_DMA_READ = 30, 31, 32
OP_CREATE_ACCELERATOR, OP_REMOVE_ACCELERATOR, OP_SVA_BIND, OP_SVA_UNBIND = 33, 34, 35, 36
OP_SVA_GET_PASID, OP_ACCEL_DMA_WRITE, OP_ACCEL_DMA_READ = 37, 38, 39
OP_IOASID_ADD_NOTIFIER, OP_IOASID_REMOVE_NOTIFIER, OP_IOASID_NOTIFY = 40, 41, 42
OP_ACCEL_REGION_READ, OP_ACCEL_REGION_WRITE = 43, 44
ARG_NONE, ARG_VALUE, ARG_BYTES, ARG_STRING = 0, 1, 2, 3

# The VFIO uAPI numbers most tools need (linux/vfio.h).
VFIO_GET_API_VERSION = 0x3B64
VFIO_CHECK_EXTENSION = 0x3B65
VFIO_SET_IOMMU = 0x3B66
VFIO_GROUP_GET_STATUS = 0x3B67
VFIO_GROUP_SET_CONTAINER = 0x3B68
VFIO_GROUP_UNSET_CONTAINER = 0x3B69
VFIO_GROUP_GET_DEVICE_FD = 0x3B6A
VFIO_IOMMU_GET_INFO = 0x3B70
VFIO_IOMMU_MAP_DMA = 0x3B71
VFIO_IOMMU_UNMAP_DMA = 0x3B72
VFIO_IOMMU_DIRTY_PAGES = 0x3B75
VFIO_TYPE1v2_IOMMU = 3
VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE = 1, 2
VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1
VFIO_IOMMU_DIRTY_PAGES_FLAG_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1, 2
VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 4
IOMMU_READ, IOMMU_WRITE = 1, 2
VFIO_IOMMU_PASID_REQUEST = 0x3B76
VFIO_DEVICE_FEATURE = 0x3B75

# KVM (linux/kvm.h)
KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CHECK_EXTENSION = 0xAE00, 0xAE01, 0xAE03
KVM_CREATE_VCPU, KVM_GET_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION = 0xAE41, 0x4010AE42, 0x4020AE46
KVM_ENABLE_CAP, KVM_CLEAR_DIRTY_LOG, KVM_RESET_DIRTY_RINGS = 0x4068AEA3, 0xC018AEC0, 0xAEC7
KVM_CREATE_DEVICE, KVM_SET_DEVICE_ATTR = 0xC00CAEE0, 0x4018AEE1
KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY = 1, 2
KVM_DEV_TYPE_VFIO, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_FILE_DEL = 4, 1, 1, 2

# uacce and IOASID
UACCE_CMD_START_Q, UACCE_CMD_PUT_Q = 0x5700, 0x5701
IOASID_ALLOC, IOASID_FREE, IOASID_BIND, IOASID_UNBIND = 1, 2, 3, 4


def _str(s):
    b = s.encode()
    return struct.pack('<I', len(b)) + b


class Client:
    """One connection (one process of the model). Not thread-safe; calls are synchronous."""

    def __init__(self, path, memlock=None, cap_ipc_lock=False, shm_bytes=0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self._buf = bytearray()
        self._next = 1
        self._ctx = 0
        self._handlers = {}
        self._track_write = {}
        self._remove_region = {}
        self._unlink = {}
        self._ioasid = None
        # event op -> function(body) returning the callback's value (EVENT_DONE)
        self._events = {
            EVENT_DMA_UNMAP: self._on_dma_unmap,
            EVENT_KVM_TRACK_WRITE: self._on_track_write,
            EVENT_KVM_TRACK_REMOVE_REGION: self._on_remove_region,
            EVENT_KVM_UNLINK: self._on_unlink,
            EVENT_IOASID: self._on_ioasid,
        }
        ret, data = self.request(OP_HELLO, struct.pack(
            '<IIIIQQ', MAGIC, PROTOCOL_VERSION, PROTOCOL_VERSION, 1 if cap_ipc_lock else 0,
            U64_MAX if memlock is None else memlock, shm_bytes))
        if ret < 0:
            raise OSError(-ret, 'HELLO refused')
        self.shm_size, n = struct.unpack_from('<QI', data)
        self.shm_path = data[12:12 + n].decode()
        self.shm = None
        if self.shm_size:
            fd = os.open(self.shm_path, os.O_RDWR)
            try:
                self.shm = _mmap.mmap(fd, self.shm_size)
            finally:
                os.close(fd)

    # ---- framing ---------------------------------------------------------------------------

    def _recv_frame(self):
        while True:
            if len(self._buf) >= 16:
                size, op, _flags, fid, ctx = HEADER.unpack_from(self._buf)
                if len(self._buf) >= size:
                    body = bytes(self._buf[16:size])
                    del self._buf[:size]
                    return op, fid, ctx, body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError('server closed the connection')
            self._buf += chunk

    def send_raw(self, data):
        """Sends raw bytes (tests of malformed frames)."""
        self.sock.sendall(data)

    def request(self, op, payload=b''):
        """Sends one request and returns (ret, data); events arriving meanwhile are handled."""
        fid = self._next
        self._next = (self._next + 1) & 0xffffffff or 1
        self.sock.sendall(HEADER.pack(16 + len(payload), op, 0, fid, self._ctx) + payload)
        return self.wait_reply(fid)

    def wait_reply(self, fid):
        """Reads frames until the reply to request `fid`; runs callbacks for events on the way."""
        while True:
            op, rid, _ctx, body = self._recv_frame()
            if op & REPLY_BIT:
                if rid == fid:
                    return struct.unpack_from('<q', body)[0], body[8:]
                continue
            if op & 0x4000:
                self._event(op, rid, body)

    def _event(self, op, ev, body):
        """Runs the handler of an event inside its callback (ctx = ev), then EVENT_DONE."""
        outer = self._ctx
        self._ctx = ev
        value = 0
        try:
            fn = self._events.get(op)
            if fn is not None:
                value = fn(body) or 0
        finally:
            # the callback returns even if the handler raised; the error then propagates
            self.request(OP_EVENT_DONE, struct.pack('<q', value))
            self._ctx = outer

    def _on_dma_unmap(self, body):
        iova, size, n = struct.unpack_from('<QQI', body)
        handler = self._handlers.get(body[20:20 + n].decode())
        if handler:
            handler(self, iova, size)

    def _on_track_write(self, body):
        gpa, nbytes, n = struct.unpack_from('<QII', body)
        fn = self._track_write.get(body[16:16 + n].decode())
        if fn:
            fn(self, gpa, body[16 + n:16 + n + nbytes])

    def _on_remove_region(self, body):
        gfn, nr, n = struct.unpack_from('<QII', body)
        fn = self._remove_region.get(body[16:16 + n].decode())
        if fn:
            fn(self, gfn, nr)

    def _on_unlink(self, body):
        n, = struct.unpack_from('<I', body)
        fn = self._unlink.get(body[4:4 + n].decode())
        if fn:
            fn(self)

    def _on_ioasid(self, body):
        event, ioasid, sid = struct.unpack_from('<III', body)
        return self._ioasid(self, event, ioasid, sid) if self._ioasid else 0

    # ---- the process -----------------------------------------------------------------------

    def open(self, path):
        return self.request(OP_OPEN, path.encode())[0]

    def close(self, fd):
        return self.request(OP_CLOSE, struct.pack('<I', fd))[0]

    def ioctl(self, fd, req, arg=None):
        """ioctl: arg None, an int (value), a str (device name) or a bytearray struct (updated)."""
        head = struct.pack('<II', fd, req)
        if arg is None:
            ret, _ = self.request(OP_IOCTL, head + struct.pack('<II', ARG_NONE, 0))
        elif isinstance(arg, int):
            ret, _ = self.request(OP_IOCTL, head + struct.pack('<IIQ', ARG_VALUE, 0, arg & U64_MAX))
        elif isinstance(arg, str):
            ret, _ = self.request(OP_IOCTL, head + struct.pack('<II', ARG_STRING, 0) + arg.encode())
        else:
            ret, data = self.request(OP_IOCTL, head + struct.pack('<II', ARG_BYTES, 0) + bytes(arg))
            if isinstance(arg, bytearray) and len(data) == len(arg):
                arg[:] = data
        return ret

    def mmap(self, length):
        return self.request(OP_MMAP, struct.pack('<Q', length))[0]

    def mmap_fd(self, fd, offset, length):
        return self.request(OP_MMAP_FD, struct.pack('<IIQQ', fd, 0, offset, length))[0]

    def munmap(self, addr, length):
        return self.request(OP_MUNMAP, struct.pack('<QQ', addr, length))[0]

    def read(self, addr, length):
        """Bytes of process memory, or -errno."""
        ret, data = self.request(OP_READ_MEM, struct.pack('<QI', addr, length))
        return ret if ret < 0 else data

    def write(self, addr, data):
        return self.request(OP_WRITE_MEM, struct.pack('<Q', addr) + bytes(data))[0]

    def shm_from_mem(self, addr, offset, length):
        """Copies process memory into the shared file (self.shm) at `offset`: 0 or -errno."""
        return self.request(OP_SHM_FROM_MEM, struct.pack('<QQQ', addr, offset, length))[0]

    def shm_to_mem(self, addr, offset, length):
        return self.request(OP_SHM_TO_MEM, struct.pack('<QQQ', addr, offset, length))[0]

    # ---- the host and the vendor driver ----------------------------------------------------

    def create_group(self, spec):
        """A new IOMMU group, e.g. 'kind=emulated,devices=vgpu0': its number, or -errno."""
        return self.request(OP_CREATE_GROUP, spec.encode())[0]

    def remove_group(self, gid):
        """Removes a host group: 0, -EBUSY while it is open, -ENOENT."""
        return self.request(OP_REMOVE_GROUP, struct.pack('<I', gid))[0]

    def register_dma_unmap(self, device, handler):
        """handler(client, iova, size) runs inside the callback; its calls happen inside it."""
        self._handlers[device] = handler
        return self.request(OP_DEV_REGISTER_DMA_UNMAP, _str(device))[0]

    def pin_pages(self, device, iova, npage, prot, want_pfns=False):
        """npage or -errno; with want_pfns, (ret, [pfn, ...])."""
        ret, data = self.request(OP_DEV_PIN_PAGES, _str(device) + struct.pack(
            '<QIII', iova, npage & 0xffffffff, prot, 1 if want_pfns else 0))
        if want_pfns:
            return ret, list(struct.unpack_from('<%dQ' % max(ret, 0), data)) if ret > 0 else []
        return ret

    def unpin_pages(self, device, iova, npage):
        return self.request(OP_DEV_UNPIN_PAGES, _str(device) + struct.pack('<QI', iova, npage & 0xffffffff))[0]

    def dma_rw(self, device, iova, data_or_length, write):
        """Write: 0 or -errno. Read (data_or_length = length): the bytes, or -errno."""
        if write:
            data = bytes(data_or_length)
            return self.request(OP_DEV_DMA_RW, _str(device) + struct.pack('<QII', iova, 1, len(data)) + data)[0]
        ret, data = self.request(OP_DEV_DMA_RW, _str(device) + struct.pack('<QII', iova, 0, data_or_length))
        return ret if ret < 0 else data

    # ---- KVM: guest accesses through a vCPU fd, and a device model on its device's VM ------

    def vcpu_write(self, vcpu_fd, gpa, data, as_id=0):
        """A guest store through the MMU: the bytes stored, or -errno."""
        return self.request(OP_VCPU_WRITE, struct.pack('<IIQ', vcpu_fd, as_id, gpa) + bytes(data))[0]

    def vcpu_write_guest(self, vcpu_fd, gpa, data, as_id=0):
        """KVM's own write into guest memory (recorded, never notified): 0 or -errno."""
        return self.request(OP_VCPU_WRITE_GUEST, struct.pack('<IIQ', vcpu_fd, as_id, gpa) + bytes(data))[0]

    def vcpu_read(self, vcpu_fd, gpa, length, as_id=0):
        """A guest read: the bytes, or -errno."""
        ret, data = self.request(OP_VCPU_READ, struct.pack('<IIQI', vcpu_fd, as_id, gpa, length))
        return ret if ret < 0 else data

    def vcpu_write_many(self, vcpu_fd, gpas, data, bytes_each, as_id=0):
        """Store i writes data[i*bytes_each:(i+1)*bytes_each] at gpas[i]: the stores made, or -errno."""
        head = struct.pack('<IIII', vcpu_fd, as_id, len(gpas), bytes_each)
        return self.request(OP_VCPU_WRITE_MANY, head + struct.pack('<%dQ' % len(gpas), *gpas) + bytes(data))[0]

    def _gfn(self, op, device, gfn):
        return self.request(op, _str(device) + struct.pack('<Q', gfn))[0]

    def kvm_track_add(self, device, gfn):
        """Write-protects gfn of the device's VM: 0 or -errno (-ESRCH: the device has no KVM)."""
        return self._gfn(OP_DEV_KVM_TRACK_ADD, device, gfn)

    def kvm_track_remove(self, device, gfn):
        return self._gfn(OP_DEV_KVM_TRACK_REMOVE, device, gfn)

    def kvm_track_count(self, device, gfn):
        return self._gfn(OP_DEV_KVM_TRACK_COUNT, device, gfn)

    def kvm_gfn_to_hva(self, device, gfn):
        return self._gfn(OP_DEV_KVM_GFN_TO_HVA, device, gfn)

    def register_kvm_node(self, device, track_write=None, remove_region=None):
        """A page-track node on the device's VM: track_write(client, gpa, data),
        remove_region(client, gfn, nr_pages); each runs inside its callback."""
        events = (1 if track_write else 0) | (2 if remove_region else 0)
        ret = self.request(OP_DEV_KVM_REGISTER_NODE, _str(device) + struct.pack('<I', events))[0]
        if ret == 0:  # registering sends no event: the handlers are set once the node is in
            self._track_write[device] = track_write
            self._remove_region[device] = remove_region
        return ret

    def unregister_kvm_node(self, device):
        return self.request(OP_DEV_KVM_UNREGISTER_NODE, _str(device))[0]

    def register_kvm_unlink(self, device, fn):
        """fn(client) runs when the device's KVM association ends; None removes it."""
        self._unlink[device] = fn
        return self.request(OP_DEV_REGISTER_KVM_UNLINK, _str(device) + struct.pack('<I', 1 if fn else 0))[0]

    # ---- a passthrough device's own DMA ----------------------------------------------------

    def dev_dma_write(self, device, iova, data):
        """The device writes through its IOMMU: 0 or -errno (-EFAULT: an IOMMU fault)."""
        return self.request(OP_DEV_DMA_WRITE, _str(device) + struct.pack('<Q', iova) + bytes(data))[0]

    def dev_dma_read(self, device, iova, length):
        ret, data = self.request(OP_DEV_DMA_READ, _str(device) + struct.pack('<QI', iova, length))
        return ret if ret < 0 else data

    # ---- accelerators, SVA and IOASID notifiers --------------------------------------------

    def create_accelerator(self, spec=''):
        """A new accelerator, e.g. 'name=zip,queues=4': (devId, path), or -errno."""
        ret, data = self.request(OP_CREATE_ACCELERATOR, spec.encode())
        return ret if ret < 0 else (ret, data.decode())

    def remove_accelerator(self, path):
        return self.request(OP_REMOVE_ACCELERATOR, _str(path))[0]

    def sva_bind(self, path):
        """Binds this process to the accelerator: a handle (>= 1), or -errno."""
        return self.request(OP_SVA_BIND, _str(path))[0]

    def sva_unbind(self, handle):
        return self.request(OP_SVA_UNBIND, struct.pack('<I', handle))[0]

    def sva_get_pasid(self, handle):
        return self.request(OP_SVA_GET_PASID, struct.pack('<I', handle))[0]

    def accel_dma_write(self, path, pasid, va, data):
        """The accelerator writes tagged with this process's PASID: 0 or -errno."""
        return self.request(OP_ACCEL_DMA_WRITE, _str(path) + struct.pack('<IIQ', pasid, 0, va) + bytes(data))[0]

    def accel_dma_read(self, path, pasid, va, length):
        ret, data = self.request(OP_ACCEL_DMA_READ, _str(path) + struct.pack('<IIQ', pasid, length, va))
        return ret if ret < 0 else data

    def accel_region_read(self, path, qid, region, offset, length):
        """The device's view of a queue region of this process (0 MMIO, 1 DUS): bytes or -errno."""
        ret, data = self.request(OP_ACCEL_REGION_READ, _str(path) + struct.pack('<IIII', qid, region, offset, length))
        return ret if ret < 0 else data

    def accel_region_write(self, path, qid, region, offset, data):
        return self.request(OP_ACCEL_REGION_WRITE, _str(path) + struct.pack('<III', qid, region, offset) + bytes(data))[0]

    def add_ioasid_notifier(self, fn, priority=0):
        """fn(client, event, id, sid) -> NOTIFY_* value, on this process's VM PASID set."""
        ret = self.request(OP_IOASID_ADD_NOTIFIER, struct.pack('<i', priority))[0]
        if ret == 0:
            self._ioasid = fn
        return ret

    def remove_ioasid_notifier(self):
        return self.request(OP_IOASID_REMOVE_NOTIFIER)[0]

    def ioasid_notify(self, ioasid, cmd):
        """IOASID_BIND or IOASID_UNBIND of an ID of this process's VM set: the set chain's result."""
        return self.request(OP_IOASID_NOTIFY, struct.pack('<II', ioasid, cmd))[0]

    def stats(self):
        import json
        return json.loads(self.request(OP_STATS)[1].decode())

    def close_connection(self):
        """Ends the connection: the process exits on the server."""
        if self.shm is not None:
            self.shm.close()
        self.sock.close()
