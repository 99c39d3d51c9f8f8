/* A device model and a VMM in C: guest stores through a vCPU fd with a page-track node on the
 * device's VM, and a passthrough device's DMA recorded by its DMA-logging tracker. */
#include <stdio.h>
#include <string.h>

#include "vfio_dirty.h"

struct region { uint32_t slot, flags; uint64_t gpa, size, uaddr; };
struct dirty_log { uint32_t slot, pad; uint64_t bitmap; };
struct create_device { uint32_t type, fd, flags; };
struct device_attr { uint32_t flags, group; uint64_t attr, addr; };
struct dma_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct feature_start { uint32_t argsz, flags; uint64_t page_size; uint32_t num_ranges, pad; uint64_t ranges; };
struct feature_report { uint32_t argsz, flags; uint64_t iova, length, page_size, bitmap; };

static int64_t on_event(struct vfd *c, uint16_t op, const unsigned char *p, size_t n, void *opaque)
{
	uint64_t gpa;
	uint32_t bytes;
	(void)c;
	(void)opaque;
	if (op != 0x4002 || n < 12)
		return 0;
	memcpy(&gpa, p, 8);
	memcpy(&bytes, p + 8, 4);
	printf("track 0x%x gpa 0x%llx bytes %u\n", op, (unsigned long long)gpa, bytes);
	return 0;
}

static void hex(const char *what, const unsigned char *b, int n)
{
	printf("%s", what);
	for (int i = 0; i < n; i++)
		printf(" %02x", b[i]);
	printf("\n");
}

int main(int argc, char **argv)
{
	struct vfd *c = vfd_connect(argv[argc - 1], NULL);
	if (!c)
		return 1;
	/* the VMM: a VM, slot 0 (16 pages at 0x100000, dirty logging), vCPU 0 */
	int kvm = (int)vfd_open(c, "/dev/kvm");
	int vm = (int)vfd_ioctl_value(c, kvm, 0xAE01, 0);
	int64_t U = vfd_mmap(c, 0x200000), buf = vfd_mmap(c, 0x1000);
	struct region r = { 0, 1, 0x100000, 0x10000, (uint64_t)U };
	long ok = vfd_ioctl_struct(c, vm, 0x4020AE46, &r, sizeof(r));
	int vcpu = (int)vfd_ioctl_value(c, vm, 0xAE41, 0);
	/* an emulated group added to the VM's KVM-VFIO device; its device opened */
	long gid = vfd_create_group(c, "kind=emulated,devices=c-kvm");
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%ld", gid);
	int cfd = (int)vfd_open(c, "/dev/vfio/vfio"), gfd = (int)vfd_open(c, path);
	ok |= vfd_ioctl_value(c, gfd, 0x3B68, (uint64_t)cfd) | vfd_ioctl_value(c, cfd, 0x3B66, 3);
	struct create_device cd = { 4, 0, 0 };
	ok |= vfd_ioctl_struct(c, vm, 0xC00CAEE0, &cd, sizeof(cd));
	ok |= vfd_write(c, (uint64_t)buf, &gfd, 4);
	struct device_attr add = { 0, 1, 1, (uint64_t)buf };
	ok |= vfd_ioctl_struct(c, (int)cd.fd, 0x4018AEE1, &add, sizeof(add));
	ok |= vfd_ioctl_name(c, gfd, 0x3B6A, "c-kvm") < 0;
	/* the device model: a node on its device's VM, page 0x105 write-tracked */
	vfd_set_event_handler(c, on_event, NULL);
	ok |= vfd_dev_kvm_register_node(c, "c-kvm", 1) | vfd_dev_kvm(c, VFD_KVM_TRACK_ADD, "c-kvm", 0x105);
	printf("setup %ld count %lld\n", ok, (long long)vfd_dev_kvm(c, VFD_KVM_TRACK_COUNT, "c-kvm", 0x105));
	const unsigned char data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	printf("vcpu_write %ld\n", vfd_vcpu_write(c, vcpu, 0x105008, data, 8, 0));
	struct dirty_log log = { 0, 0, (uint64_t)buf + 0x100 };
	unsigned char b[16];
	vfd_ioctl_struct(c, vm, 0x4010AE42, &log, sizeof(log));
	vfd_read(c, (uint64_t)buf + 0x100, b, 8);
	hex("dirty log", b, 8);
	vfd_vcpu_read(c, vcpu, 0x105008, b, 8, 0);
	hex("guest", b, 8);
	/* a passthrough device with a DMA-logging tracker, type1-mapped 1 MiB at IOVA 0 */
	gid = vfd_create_group(c, "kind=iommu,devices=c-pt,dmaLogging=all");
	snprintf(path, sizeof(path), "/dev/vfio/%ld", gid);
	cfd = (int)vfd_open(c, "/dev/vfio/vfio");
	gfd = (int)vfd_open(c, path);
	ok = vfd_ioctl_value(c, gfd, 0x3B68, (uint64_t)cfd) | vfd_ioctl_value(c, cfd, 0x3B66, 3);
	int64_t mem = vfd_mmap(c, 1 << 20);
	struct dma_map map = { 32, 3, (uint64_t)mem, 0, 1 << 20 };
	ok |= vfd_ioctl_struct(c, cfd, 0x3B71, &map, sizeof(map));
	int dfd = (int)vfd_ioctl_name(c, gfd, 0x3B6A, "c-pt");
	uint64_t range[2] = { 0, 1 << 20 };
	ok |= vfd_write(c, (uint64_t)buf + 0x200, range, sizeof(range));
	struct feature_start start = { 32, 0x20006, 0x1000, 1, 0, (uint64_t)buf + 0x200 };
	ok |= vfd_ioctl_struct(c, dfd, 0x3B75, &start, sizeof(start));
	long w = vfd_dev_dma_write(c, "c-pt", 0x5000, "hi", 2);
	struct feature_report rep = { 40, 0x10008, 0, 0x40000, 0x1000, (uint64_t)buf + 0x300 };
	ok |= vfd_ioctl_struct(c, dfd, 0x3B75, &rep, sizeof(rep));
	vfd_read(c, (uint64_t)buf + 0x300, b, 8);
	printf("device setup %ld dma %ld unmapped %ld\n", ok, w, vfd_dev_dma_write(c, "c-pt", 0x100000, "x", 1));
	hex("report", b, 8);
	memset(b, 0, sizeof(b));
	printf("dma read %ld %.2s\n", vfd_dev_dma_read(c, "c-pt", 0x5000, b, 2), (const char *)b);
	vfd_disconnect(c);
	return 0;
}
