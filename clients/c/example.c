/*
 * Worked example: map guest memory, start dirty tracking, write through a device as its vendor
 * driver would (vfio_dma_rw), and harvest the dirty bitmap through the shared file.
 *
 *   gcc -O2 -o example example.c vfio_dirty.c && ./example SOCKET [DEVICE]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfio_dirty.h"

#define VFIO_GROUP_SET_CONTAINER 0x3B68
#define VFIO_SET_IOMMU 0x3B66
#define VFIO_GROUP_GET_DEVICE_FD 0x3B6A
#define VFIO_IOMMU_MAP_DMA 0x3B71
#define VFIO_IOMMU_DIRTY_PAGES 0x3B75
#define VFIO_TYPE1v2_IOMMU 3

#define GUEST (64ull << 20)
#define PAGES (GUEST >> 12)
#define BITMAP_BYTES (PAGES / 8)

/* The kernel's structs (linux/vfio.h), LP64 little-endian. */
struct dma_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct dirty { uint32_t argsz, flags; };
struct dirty_get { uint32_t argsz, flags; uint64_t iova, size, pgsize, bitmap_size, data; };

static long check(const char *what, long r)
{
	if (r < 0) {
		fprintf(stderr, "%s failed: errno %ld\n", what, -r);
		exit(1);
	}
	return r;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 2 ? argv[2] : "vgpu0";
	struct vfd_options o = { .memlock = UINT64_MAX, .shm_bytes = BITMAP_BYTES };
	struct vfd *c = vfd_connect(argv[1], &o);
	if (!c) {
		perror("connect");
		return 1;
	}
	char spec[160];
	snprintf(spec, sizeof(spec), "kind=emulated,devices=%s", dev);
	long gid = check("create group", vfd_create_group(c, spec));
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%ld", gid);
	int container = (int)check("open container", vfd_open(c, "/dev/vfio/vfio"));
	int group = (int)check("open group", vfd_open(c, path));
	check("set container", vfd_ioctl_value(c, group, VFIO_GROUP_SET_CONTAINER, (uint64_t)container));
	check("set iommu", vfd_ioctl_value(c, container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	check("device fd", vfd_ioctl_name(c, group, VFIO_GROUP_GET_DEVICE_FD, dev));

	int64_t guest = check("mmap", (long)vfd_mmap(c, GUEST));
	int64_t bitmap = check("mmap", (long)vfd_mmap(c, BITMAP_BYTES));
	struct dma_map m = { sizeof(m), 3, (uint64_t)guest, 0, GUEST };
	check("map", vfd_ioctl_struct(c, container, VFIO_IOMMU_MAP_DMA, &m, sizeof(m)));
	struct dirty start = { sizeof(start), 1 };
	check("start", vfd_ioctl_struct(c, container, VFIO_IOMMU_DIRTY_PAGES, &start, sizeof(start)));

	char hello[] = "hello";
	static unsigned char block[8192];
	memset(block, 0xab, sizeof(block));
	check("dma write", vfd_dma_rw(c, dev, 0x5000, hello, 5, 1));
	check("dma write", vfd_dma_rw(c, dev, 0x200000, block, sizeof(block), 1));

	struct dirty_get g = { sizeof(g), 4, 0, GUEST, 4096, BITMAP_BYTES, (uint64_t)bitmap };
	check("get bitmap", vfd_ioctl_struct(c, container, VFIO_IOMMU_DIRTY_PAGES, &g, sizeof(g)));
	check("copy bitmap", vfd_shm_from_mem(c, (uint64_t)bitmap, 0, BITMAP_BYTES));
	const unsigned char *bits = vfd_shm(c, NULL);
	printf("dirty pages:");
	for (uint64_t i = 0; i < PAGES; i++)
		if (bits[i >> 3] >> (i & 7) & 1)
			printf(" %llu", (unsigned long long)i);
	printf("\n");
	vfd_disconnect(c);
	return 0;
}
