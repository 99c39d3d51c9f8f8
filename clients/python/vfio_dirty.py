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
U64_MAX = (1 << 64) - 1

OP_HELLO, OP_OPEN, OP_CLOSE, OP_IOCTL, OP_MMAP, OP_MMAP_FD, OP_MUNMAP = 1, 2, 3, 4, 5, 6, 7
OP_READ_MEM, OP_WRITE_MEM, OP_SHM_FROM_MEM, OP_SHM_TO_MEM, OP_CREATE_GROUP = 8, 9, 10, 11, 12
OP_DEV_REGISTER_DMA_UNMAP, OP_DEV_PIN_PAGES, OP_DEV_UNPIN_PAGES, OP_DEV_DMA_RW = 13, 14, 15, 16
OP_EVENT_DONE, OP_STATS, OP_REMOVE_GROUP = 17, 18, 19
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
            if op == EVENT_DMA_UNMAP:
                self._event(rid, body)
            elif op & 0x4000:
                self._unknown_event(rid)

    def _unknown_event(self, ev):
        outer = self._ctx
        self._ctx = ev
        try:
            self.request(OP_EVENT_DONE, struct.pack('<q', 0))
        finally:
            self._ctx = outer

    def _event(self, ev, body):
        iova, size, n = struct.unpack_from('<QQI', body)
        name = body[20:20 + n].decode()
        outer = self._ctx
        self._ctx = ev
        try:
            handler = self._handlers.get(name)
            if handler:
                handler(self, iova, size)
        finally:
            # the callback returns even if the handler raised; the error then propagates
            self.request(OP_EVENT_DONE, struct.pack('<q', 0))
            self._ctx = outer

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

    def stats(self):
        import json
        return json.loads(self.request(OP_STATS)[1].decode())

    def close_connection(self):
        """Ends the connection: the process exits on the server."""
        if self.shm is not None:
            self.shm.close()
        self.sock.close()
