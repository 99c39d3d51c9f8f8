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

/*
 * Events other than dma_unmap (KVM page-track writes 0x4002 and region removal 0x4003, KVM unlink
 * 0x4004, IOASID notifications 0x4005; payloads in docs/PROTOCOL.md §6): `fn` runs inside the
 * callback and its return is the EVENT_DONE value. Without a handler they are answered 0.
 */
typedef int64_t (*vfd_event_fn)(struct vfd *c, uint16_t op, const unsigned char *payload, size_t len,
                                void *opaque);
void vfd_set_event_handler(struct vfd *c, vfd_event_fn fn, void *opaque);

/* KVM: a guest store (bytes stored or -errno), KVM's own write (0), a guest read, by vCPU fd. */
long vfd_vcpu_write(struct vfd *c, int vcpu_fd, uint64_t gpa, const void *data, uint32_t len, uint32_t as_id);
long vfd_vcpu_write_guest(struct vfd *c, int vcpu_fd, uint64_t gpa, const void *data, uint32_t len,
                          uint32_t as_id);
long vfd_vcpu_read(struct vfd *c, int vcpu_fd, uint64_t gpa, void *buf, uint32_t len, uint32_t as_id);

/* A device model's calls on its device's VM (dev.kvm): the result, or -errno. */
#define VFD_KVM_TRACK_ADD 24
#define VFD_KVM_TRACK_REMOVE 25
#define VFD_KVM_TRACK_COUNT 26
#define VFD_KVM_GFN_TO_HVA 27
int64_t vfd_dev_kvm(struct vfd *c, int call, const char *device, uint64_t gfn);
/* A page-track node: events bit 0 track writes (0x4002), bit 1 region removal (0x4003). */
long vfd_dev_kvm_register_node(struct vfd *c, const char *device, uint32_t events);
long vfd_dev_kvm_unregister_node(struct vfd *c, const char *device);
long vfd_dev_register_kvm_unlink(struct vfd *c, const char *device, int enable);

/* A passthrough device's own DMA through its IOMMU: 0 or -errno. */
long vfd_dev_dma_write(struct vfd *c, const char *device, uint64_t iova, const void *data, uint32_t len);
long vfd_dev_dma_read(struct vfd *c, const char *device, uint64_t iova, void *buf, uint32_t len);

/* Sends one request (op, payload) and waits for its reply: ret, and up to `cap` data bytes. */
int64_t vfd_request(struct vfd *c, uint16_t op, const void *payload, size_t len, void *data,
                    size_t cap, size_t *data_len);

#ifdef __cplusplus
}
#endif
#endif
