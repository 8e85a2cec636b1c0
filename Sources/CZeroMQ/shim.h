// Imports libzmq for Swift; the binding itself lives in Sources/ZeroMQ.
#ifndef CZEROMQ_SHIM_H
#define CZEROMQ_SHIM_H
#include <zmq.h>
#endif
