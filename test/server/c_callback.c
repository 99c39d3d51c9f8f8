/* A vendor driver in C: pins pages, and unpins them from inside its dma_unmap callback. */
#include <stdio.h>
#include <string.h>

#include "vfio_dirty.h"

struct dma_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct dma_unmap { uint32_t argsz, flags; uint64_t iova, size; };

static int events;

static void on_unmap(struct vfd *c, const char *device, uint64_t iova, uint64_t size, void *opaque)
{
	(void)opaque;
	events++;
	printf("event %s %llu %llu unpin %ld\n", device, (unsigned long long)iova,
	       (unsigned long long)size, vfd_unpin_pages(c, device, 0x3000, 4));
}

int main(int argc, char **argv)
{
	(void)argc;
	struct vfd *c = vfd_connect(argv[1], NULL);
	if (!c)
		return 1;
	long gid = vfd_create_group(c, "kind=emulated,devices=c-cb");
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%ld", gid);
	long r = vfd_open(c, "/dev/vfio/vfio") != 3;
	r |= vfd_open(c, path) != 4;
	r |= vfd_ioctl_value(c, 4, 0x3B68, 3) | vfd_ioctl_value(c, 3, 0x3B66, 3);
	r |= vfd_ioctl_name(c, 4, 0x3B6A, "c-cb") != 5;
	r |= vfd_register_dma_unmap(c, "c-cb", on_unmap, NULL);
	int64_t mem = vfd_mmap(c, 1 << 20);
	struct dma_map m = { sizeof(m), 3, (uint64_t)mem, 0, 1 << 20 };
	r |= vfd_ioctl_struct(c, 3, 0x3B71, &m, sizeof(m));
	uint64_t pfns[4];
	printf("setup %ld pin %ld\n", r, vfd_pin_pages(c, "c-cb", 0x3000, 4, 3, pfns));
	struct dma_unmap u = { sizeof(u), 0, 0, 1 << 20 };
	long ur = vfd_ioctl_struct(c, 3, 0x3B72, &u, sizeof(u));
	printf("unmap %ld size %llu events %d\n", ur, (unsigned long long)u.size, events);
	vfd_disconnect(c);
	return 0;
}
