/* Client of `vfio-dirty serve`: see vfio_dirty.h and docs/PROTOCOL.md. Little-endian hosts. */
#define _GNU_SOURCE
#include "vfio_dirty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
	OP_HELLO = 1, OP_OPEN, OP_CLOSE, OP_IOCTL, OP_MMAP, OP_MMAP_FD, OP_MUNMAP, OP_READ_MEM,
	OP_WRITE_MEM, OP_SHM_FROM_MEM, OP_SHM_TO_MEM, OP_CREATE_GROUP, OP_DEV_REGISTER_DMA_UNMAP,
	OP_DEV_PIN_PAGES, OP_DEV_UNPIN_PAGES, OP_DEV_DMA_RW, OP_EVENT_DONE, OP_STATS, OP_REMOVE_GROUP,
	OP_VCPU_WRITE, OP_VCPU_READ, OP_VCPU_WRITE_GUEST, OP_VCPU_WRITE_MANY,
	OP_DEV_KVM_REGISTER_NODE = 28, OP_DEV_KVM_UNREGISTER_NODE, OP_DEV_REGISTER_KVM_UNLINK,
	OP_DEV_DMA_WRITE, OP_DEV_DMA_READ,
};
#define REPLY_BIT 0x8000
#define EVENT_DMA_UNMAP 0x4001
#define MAGIC 0x59444656u
#define MAX_HANDLERS 16

struct handler {
	char device[128];
	vfd_dma_unmap_fn fn;
	void *opaque;
};

struct vfd {
	int sock;
	uint32_t next_id;
	uint32_t ctx;
	void *shm;
	uint64_t shm_size;
	struct handler handlers[MAX_HANDLERS];
	vfd_event_fn on_other;   /* events 0x4002.. (vfd_set_event_handler) */
	void *other_opaque;
};

struct hdr {
	uint32_t size;
	uint16_t op, flags;
	uint32_t id, ctx;
};

static int io_all(int fd, void *p, size_t n, int wr)
{
	char *b = p;
	while (n) {
		ssize_t k = wr ? send(fd, b, n, MSG_NOSIGNAL) : recv(fd, b, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static void on_event(struct vfd *c, uint32_t ev, const unsigned char *body, size_t n);

/* Reads frames until the reply to `id`; events on the way run their callbacks. */
static int64_t wait_reply(struct vfd *c, uint32_t id, void *data, size_t cap, size_t *data_len)
{
	for (;;) {
		struct hdr h;
		if (io_all(c->sock, &h, sizeof(h), 0) || h.size < sizeof(h))
			return -ECONNRESET;
		size_t n = h.size - sizeof(h);
		unsigned char *body = malloc(n ? n : 1);
		if (!body || io_all(c->sock, body, n, 0)) {
			free(body);
			return -ECONNRESET;
		}
		if (h.op & REPLY_BIT) {
			if (h.id != id || n < 8) {
				free(body);
				continue;
			}
			int64_t ret;
			memcpy(&ret, body, 8);
			size_t k = n - 8 < cap ? n - 8 : cap;
			if (data && k)
				memcpy(data, body + 8, k);
			if (data_len)
				*data_len = n - 8;
			free(body);
			return ret;
		}
		if (h.op == EVENT_DMA_UNMAP) {
			on_event(c, h.id, body, n);
		} else if (h.op & 0x4000) { /* the event handler's value, or 0 without one */
			uint32_t outer = c->ctx;
			c->ctx = h.id;
			int64_t value = c->on_other ? c->on_other(c, h.op, body, n, c->other_opaque) : 0;
			vfd_request(c, OP_EVENT_DONE, &value, 8, NULL, 0, NULL);
			c->ctx = outer;
		}
		free(body);
	}
}

int64_t vfd_request(struct vfd *c, uint16_t op, const void *payload, size_t len, void *data,
                    size_t cap, size_t *data_len)
{
	struct hdr h = { (uint32_t)(sizeof(h) + len), op, 0, c->next_id, c->ctx };
	c->next_id = c->next_id + 1 ? c->next_id + 1 : 1;
	if (io_all(c->sock, &h, sizeof(h), 1) || (len && io_all(c->sock, (void *)payload, len, 1)))
		return -ECONNRESET;
	return wait_reply(c, h.id, data, cap, data_len);
}

static void on_event(struct vfd *c, uint32_t ev, const unsigned char *body, size_t n)
{
	uint64_t iova = 0, size = 0;
	uint32_t len;
	char name[128] = "";
	if (n >= 20) {
		memcpy(&iova, body, 8);
		memcpy(&size, body + 8, 8);
		memcpy(&len, body + 16, 4);
		if (len < sizeof(name) && 20 + len <= n)
			memcpy(name, body + 20, len), name[len] = 0;
	}
	uint32_t outer = c->ctx;
	c->ctx = ev;
	for (int i = 0; i < MAX_HANDLERS; i++)
		if (c->handlers[i].fn && !strcmp(c->handlers[i].device, name))
			c->handlers[i].fn(c, name, iova, size, c->handlers[i].opaque);
	int64_t zero = 0;
	vfd_request(c, OP_EVENT_DONE, &zero, 8, NULL, 0, NULL);
	c->ctx = outer;
}

/* A payload builder over a caller's buffer. */
struct buf {
	unsigned char *p;
	size_t n, cap;
};
static void put(struct buf *b, const void *v, size_t n)
{
	if (b->n + n <= b->cap)
		memcpy(b->p + b->n, v, n);
	b->n += n;
}
static void put32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void putstr(struct buf *b, const char *s)
{
	put32(b, (uint32_t)strlen(s));
	put(b, s, strlen(s));
}

struct vfd *vfd_connect(const char *path, const struct vfd_options *o)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(a.sun_path, path);
	struct vfd *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->next_id = 1;
	c->sock = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c->sock < 0 || connect(c->sock, (struct sockaddr *)&a, sizeof(a))) {
		int e = errno;
		if (c->sock >= 0)
			close(c->sock);
		free(c);
		errno = e;
		return NULL;
	}
	unsigned char p[32], data[4096 + 12];
	struct buf b = { p, 0, sizeof(p) };
	put32(&b, MAGIC);
	put32(&b, VFD_PROTOCOL_VERSION);
	put32(&b, VFD_PROTOCOL_VERSION);
	put32(&b, o && o->cap_ipc_lock ? 1 : 0);
	put64(&b, o ? o->memlock : UINT64_MAX);
	put64(&b, o ? o->shm_bytes : 0);
	size_t dl = 0;
	int64_t r = vfd_request(c, OP_HELLO, p, b.n, data, sizeof(data) - 1, &dl);
	if (r < 0) {
		close(c->sock);
		free(c);
		errno = (int)-r;
		return NULL;
	}
	uint32_t plen;
	memcpy(&c->shm_size, data, 8);
	memcpy(&plen, data + 8, 4);
	if (c->shm_size && plen < 4096) {
		data[12 + plen] = 0;
		int fd = open((char *)data + 12, O_RDWR);
		if (fd >= 0) {
			void *m = mmap(NULL, c->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			c->shm = m == MAP_FAILED ? NULL : m;
			close(fd);
		}
	}
	return c;
}

void vfd_disconnect(struct vfd *c)
{
	if (c->shm)
		munmap(c->shm, c->shm_size);
	close(c->sock);
	free(c);
}

void *vfd_shm(struct vfd *c, uint64_t *size)
{
	if (size)
		*size = c->shm_size;
	return c->shm;
}

long vfd_open(struct vfd *c, const char *path)
{
	return (long)vfd_request(c, OP_OPEN, path, strlen(path), NULL, 0, NULL);
}

long vfd_close(struct vfd *c, int fd)
{
	uint32_t f = (uint32_t)fd;
	return (long)vfd_request(c, OP_CLOSE, &f, 4, NULL, 0, NULL);
}

static long ioctl_with(struct vfd *c, int fd, uint32_t request, uint32_t kind, const void *arg,
                       size_t len, void *out, size_t cap)
{
	size_t n = 16 + len;
	unsigned char *p = malloc(n);
	if (!p)
		return -ENOMEM;
	struct buf b = { p, 0, n };
	put32(&b, (uint32_t)fd);
	put32(&b, request);
	put32(&b, kind);
	put32(&b, 0);
	put(&b, arg, len);
	long r = (long)vfd_request(c, OP_IOCTL, p, n, out, cap, NULL);
	free(p);
	return r;
}

long vfd_ioctl_none(struct vfd *c, int fd, uint32_t request)
{
	return ioctl_with(c, fd, request, 0, NULL, 0, NULL, 0);
}

long vfd_ioctl_value(struct vfd *c, int fd, uint32_t request, uint64_t value)
{
	return ioctl_with(c, fd, request, 1, &value, 8, NULL, 0);
}

long vfd_ioctl_name(struct vfd *c, int fd, uint32_t request, const char *name)
{
	return ioctl_with(c, fd, request, 3, name, strlen(name), NULL, 0);
}

long vfd_ioctl_struct(struct vfd *c, int fd, uint32_t request, void *arg, size_t len)
{
	return ioctl_with(c, fd, request, 2, arg, len, arg, len);
}

int64_t vfd_mmap(struct vfd *c, uint64_t length)
{
	return vfd_request(c, OP_MMAP, &length, 8, NULL, 0, NULL);
}

long vfd_read(struct vfd *c, uint64_t addr, void *buf, uint32_t len)
{
	unsigned char p[12];
	struct buf b = { p, 0, sizeof(p) };
	put64(&b, addr);
	put32(&b, len);
	return (long)vfd_request(c, OP_READ_MEM, p, b.n, buf, len, NULL);
}

/* A request whose payload is `head` (hn bytes) then `data`. */
static long with_data(struct vfd *c, uint16_t op, const void *head, size_t hn, const void *data, uint32_t len)
{
	unsigned char *p = malloc(hn + len);
	if (!p)
		return -ENOMEM;
	memcpy(p, head, hn);
	memcpy(p + hn, data, len);
	long r = (long)vfd_request(c, op, p, hn + len, NULL, 0, NULL);
	free(p);
	return r;
}

long vfd_write(struct vfd *c, uint64_t addr, const void *data, uint32_t len)
{
	return with_data(c, OP_WRITE_MEM, &addr, 8, data, len);
}

static long shm_copy(struct vfd *c, uint16_t op, uint64_t addr, uint64_t off, uint64_t len)
{
	uint64_t p[3] = { addr, off, len };
	return (long)vfd_request(c, op, p, sizeof(p), NULL, 0, NULL);
}

long vfd_shm_from_mem(struct vfd *c, uint64_t addr, uint64_t off, uint64_t len)
{
	return shm_copy(c, OP_SHM_FROM_MEM, addr, off, len);
}

long vfd_shm_to_mem(struct vfd *c, uint64_t addr, uint64_t off, uint64_t len)
{
	return shm_copy(c, OP_SHM_TO_MEM, addr, off, len);
}

long vfd_create_group(struct vfd *c, const char *spec)
{
	return (long)vfd_request(c, OP_CREATE_GROUP, spec, strlen(spec), NULL, 0, NULL);
}

long vfd_remove_group(struct vfd *c, uint32_t id)
{
	return (long)vfd_request(c, OP_REMOVE_GROUP, &id, 4, NULL, 0, NULL);
}

long vfd_register_dma_unmap(struct vfd *c, const char *device, vfd_dma_unmap_fn fn, void *opaque)
{
	int slot = -1;
	if (strlen(device) >= sizeof(c->handlers[0].device))
		return -ENAMETOOLONG;
	for (int i = 0; i < MAX_HANDLERS && slot < 0; i++)
		if (!c->handlers[i].fn || !strcmp(c->handlers[i].device, device))
			slot = i;
	if (slot < 0)
		return -ENOSPC;
	unsigned char p[132];
	struct buf b = { p, 0, sizeof(p) };
	putstr(&b, device);
	long r = (long)vfd_request(c, OP_DEV_REGISTER_DMA_UNMAP, p, b.n, NULL, 0, NULL);
	if (r == 0) {
		strcpy(c->handlers[slot].device, device);
		c->handlers[slot].fn = fn;
		c->handlers[slot].opaque = opaque;
	}
	return r;
}

long vfd_pin_pages(struct vfd *c, const char *device, uint64_t iova, uint32_t npage, uint32_t prot,
                   uint64_t *pfns)
{
	unsigned char p[160];
	struct buf b = { p, 0, sizeof(p) };
	putstr(&b, device);
	put64(&b, iova);
	put32(&b, npage);
	put32(&b, prot);
	put32(&b, pfns ? 1 : 0);
	if (b.n > b.cap)
		return -ENAMETOOLONG;
	return (long)vfd_request(c, OP_DEV_PIN_PAGES, p, b.n, pfns, pfns ? (size_t)npage * 8 : 0, NULL);
}

/* A request whose payload is `str device`, `u64 a`, `u32 b`; up to `cap` reply bytes into `data`. */
static long str_u64_u32(struct vfd *c, uint16_t op, const char *device, uint64_t a, uint32_t b32, void *data,
                        size_t cap)
{
	unsigned char p[160];
	struct buf b = { p, 0, sizeof(p) };
	putstr(&b, device);
	put64(&b, a);
	put32(&b, b32);
	if (b.n > b.cap)
		return -ENAMETOOLONG;
	return (long)vfd_request(c, op, p, b.n, data, cap, NULL);
}

long vfd_unpin_pages(struct vfd *c, const char *device, uint64_t iova, uint32_t npage)
{
	return str_u64_u32(c, OP_DEV_UNPIN_PAGES, device, iova, npage, NULL, 0);
}

long vfd_dma_rw(struct vfd *c, const char *device, uint64_t iova, void *data, uint32_t len, int write)
{
	size_t n = 4 + strlen(device) + 16 + (write ? len : 0);
	unsigned char *p = malloc(n);
	if (!p)
		return -ENOMEM;
	struct buf b = { p, 0, n };
	putstr(&b, device);
	put64(&b, iova);
	put32(&b, write ? 1 : 0);
	put32(&b, len);
	if (write)
		put(&b, data, len);
	long r = (long)vfd_request(c, OP_DEV_DMA_RW, p, b.n, write ? NULL : data, write ? 0 : len, NULL);
	free(p);
	return r;
}

/* ---- KVM, device DMA (docs/PROTOCOL.md §4, ops 20-32) ------------------------------------ */

void vfd_set_event_handler(struct vfd *c, vfd_event_fn fn, void *opaque)
{
	c->on_other = fn;
	c->other_opaque = opaque;
}

static long vcpu_store(struct vfd *c, uint16_t op, int vcpu_fd, uint64_t gpa, const void *data, uint32_t len,
                       uint32_t as_id)
{
	unsigned char p[16];
	struct buf b = { p, 0, sizeof(p) };
	put32(&b, (uint32_t)vcpu_fd);
	put32(&b, as_id);
	put64(&b, gpa);
	return with_data(c, op, p, b.n, data, len);
}

long vfd_vcpu_write(struct vfd *c, int vcpu_fd, uint64_t gpa, const void *data, uint32_t len, uint32_t as_id)
{
	return vcpu_store(c, OP_VCPU_WRITE, vcpu_fd, gpa, data, len, as_id);
}

long vfd_vcpu_write_guest(struct vfd *c, int vcpu_fd, uint64_t gpa, const void *data, uint32_t len,
                          uint32_t as_id)
{
	return vcpu_store(c, OP_VCPU_WRITE_GUEST, vcpu_fd, gpa, data, len, as_id);
}

long vfd_vcpu_read(struct vfd *c, int vcpu_fd, uint64_t gpa, void *buf, uint32_t len, uint32_t as_id)
{
	unsigned char p[20];
	struct buf b = { p, 0, sizeof(p) };
	put32(&b, (uint32_t)vcpu_fd);
	put32(&b, as_id);
	put64(&b, gpa);
	put32(&b, len);
	return (long)vfd_request(c, OP_VCPU_READ, p, b.n, buf, len, NULL);
}

/* A request whose payload is `str device` then one u32 or u64 (width 4 or 8). */
static int64_t device_call(struct vfd *c, uint16_t op, const char *device, uint64_t v, int width)
{
	unsigned char p[160];
	struct buf b = { p, 0, sizeof(p) };
	putstr(&b, device);
	if (width == 8)
		put64(&b, v);
	else if (width == 4)
		put32(&b, (uint32_t)v);
	if (b.n > b.cap)
		return -ENAMETOOLONG;
	return vfd_request(c, op, p, b.n, NULL, 0, NULL);
}

int64_t vfd_dev_kvm(struct vfd *c, int call, const char *device, uint64_t gfn)
{
	if (call < VFD_KVM_TRACK_ADD || call > VFD_KVM_GFN_TO_HVA)
		return -EINVAL;
	return device_call(c, (uint16_t)call, device, gfn, 8);
}

long vfd_dev_kvm_register_node(struct vfd *c, const char *device, uint32_t events)
{
	return (long)device_call(c, OP_DEV_KVM_REGISTER_NODE, device, events, 4);
}

long vfd_dev_kvm_unregister_node(struct vfd *c, const char *device)
{
	return (long)device_call(c, OP_DEV_KVM_UNREGISTER_NODE, device, 0, 0);
}

long vfd_dev_register_kvm_unlink(struct vfd *c, const char *device, int enable)
{
	return (long)device_call(c, OP_DEV_REGISTER_KVM_UNLINK, device, enable ? 1 : 0, 4);
}

long vfd_dev_dma_write(struct vfd *c, const char *device, uint64_t iova, const void *data, uint32_t len)
{
	unsigned char p[160];
	struct buf b = { p, 0, sizeof(p) };
	putstr(&b, device);
	put64(&b, iova);
	return b.n > b.cap ? -ENAMETOOLONG : with_data(c, OP_DEV_DMA_WRITE, p, b.n, data, len);
}

long vfd_dev_dma_read(struct vfd *c, const char *device, uint64_t iova, void *buf, uint32_t len)
{
	return str_u64_u32(c, OP_DEV_DMA_READ, device, iova, len, buf, len);
}
