// mimalloc for the lancompute executable on Linux: linked before libc, its malloc and free replace glibc's.
#ifndef CMIMALLOC_SHIM_H
#define CMIMALLOC_SHIM_H
#if __has_include(<mimalloc.h>)
#include <mimalloc.h>
#else
#error "mimalloc.h not found: run Scripts/bootstrap, or install mimalloc (Debian/Ubuntu: apt install libmimalloc-dev)"
#endif
#endif
