// mimalloc for the lancompute executable on Linux: linked before libc, its malloc and free replace glibc's.
#ifndef CMIMALLOC_SHIM_H
#define CMIMALLOC_SHIM_H
#include <mimalloc.h>
#endif
