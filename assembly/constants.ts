// Constants shared by the Wasm core (assembly/) and the host (src/): the one source of both.
// Written in the subset that AssemblyScript and TypeScript read alike (plain integer consts).

// Linux x86-64 errno numbers. The core returns them negated; the host hands them to callers.
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOTTY = 25;
export const ENOSPC = 28;
export const EDEADLK = 35;
export const EOVERFLOW = 75;
export const EBADFD = 77;
export const EMSGSIZE = 90;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;

// The host page: PAGE_SIZE bytes, also the unit of pinning and of user memory frames.
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;

// The most pages one dirty bitmap covers: INT_MAX + 1 bits, 256 MiB of words.
export const BITMAP_MAX_BITS = 0x80000000;

// vfio_pin_pages takes at most PAGE_SIZE / sizeof(unsigned long) pages per call.
export const PIN_PAGES_MAX_ENTRIES = 512;

// Wasm linear memory is capped below 2 GiB so that every pointer is a positive i32, which keeps
// the ABI rule "a non-negative result or a negative errno" unambiguous for pointer results.
export const WASM_MAX_PAGES = 32767;
