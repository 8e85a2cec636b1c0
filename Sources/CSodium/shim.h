// Imports libsodium for Swift: the Ristretto255 group operations that pairing (CPace) is built on.
#ifndef CSODIUM_SHIM_H
#define CSODIUM_SHIM_H
#include <sodium.h>
#endif
