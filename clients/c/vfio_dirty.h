/*
 * Client of `vfio-dirty serve` (docs/PROTOCOL.md): a connection is a process of the engine.
 * Calls return what the kernel returns: a value >= 0, or -errno. Not thread-safe.
 *
 *   struct vfd *c = vfd_connect("/run/vfio-dirty.sock", NULL);
 *   int fd = vfd_open(c, "/dev/vfio/vfio");
 *   long r = vfd_ioctl_struct(c, fd, VFIO_IOMMU_MAP_DMA, &map, sizeof(map));  // map updated
 */
#ifndef VFIO_DIRTY_H
#define VFIO_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VFD_PROTOCOL_VERSION 1

struct vfd;

/* A dma_unmap callback: runs inside the callback (calls made on `c` from here run inside it). */
typedef void (*vfd_dma_unmap_fn)(struct vfd *c, const char *device, uint64_t iova, uint64_t size,
                                 void *opaque);

struct vfd_options {
	uint64_t memlock;     /* RLIMIT_MEMLOCK in bytes; UINT64_MAX = unlimited (the default) */
	int cap_ipc_lock;     /* CAP_IPC_LOCK */
	uint64_t shm_bytes;   /* size of the shared file to map (0: none) */
};

/* Connects and performs HELLO; NULL with errno set on failure. `o` may be NULL. */
struct vfd *vfd_connect(const char *path, const struct vfd_options *o);
/* Ends the connection: the process exits on the server. */
void vfd_disconnect(struct vfd *c);

/* The shared file mapped MAP_SHARED (NULL without one), and its size. */
void *vfd_shm(struct vfd *c, uint64_t *size);

long vfd_open(struct vfd *c, const char *path);
long vfd_close(struct vfd *c, int fd);
/* ioctl without an argument, with a value, with a device name, with a struct (updated in place). */
long vfd_ioctl_none(struct vfd *c, int fd, uint32_t request);
long vfd_ioctl_value(struct vfd *c, int fd, uint32_t request, uint64_t value);
long vfd_ioctl_name(struct vfd *c, int fd, uint32_t request, const char *name);
long vfd_ioctl_struct(struct vfd *c, int fd, uint32_t request, void *arg, size_t len);

/* Process memory: mmap returns the address (>= 0) or -errno. */
int64_t vfd_mmap(struct vfd *c, uint64_t length);
long vfd_read(struct vfd *c, uint64_t addr, void *buf, uint32_t len);
long vfd_write(struct vfd *c, uint64_t addr, const void *buf, uint32_t len);
/* Bulk copies between process memory and the shared file. */
long vfd_shm_from_mem(struct vfd *c, uint64_t addr, uint64_t shm_offset, uint64_t len);
long vfd_shm_to_mem(struct vfd *c, uint64_t addr, uint64_t shm_offset, uint64_t len);

/* The host: a new IOMMU group from a spec ("kind=emulated,devices=vgpu0"); its number. */
long vfd_create_group(struct vfd *c, const char *spec);
/* Removes a host group: 0, -EBUSY while it is open, -ENOENT. */
long vfd_remove_group(struct vfd *c, uint32_t id);

/* The vendor driver of a device whose group this connection holds. */
long vfd_register_dma_unmap(struct vfd *c, const char *device, vfd_dma_unmap_fn fn, void *opaque);
long vfd_pin_pages(struct vfd *c, const char *device, uint64_t iova, uint32_t npage, uint32_t prot,
                   uint64_t *pfns /* may be NULL */);
long vfd_unpin_pages(struct vfd *c, const char *device, uint64_t iova, uint32_t npage);
long vfd_dma_rw(struct vfd *c, const char *device, uint64_t iova, void *data, uint32_t len, int write);

/* Sends one request (op, payload) and waits for its reply: ret, and up to `cap` data bytes. */
int64_t vfd_request(struct vfd *c, uint16_t op, const void *payload, size_t len, void *data,
                    size_t cap, size_t *data_len);

#ifdef __cplusplus
}
#endif
#endif
