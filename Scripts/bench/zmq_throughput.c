/* The C reference for Scripts/bench/zmq-throughput: PUSH/PULL over tcp://127.0.0.1 with libzmq alone.
 * It does exactly what Sources/zmq-throughput-bench/main.swift does, so the two rates compare
 * the binding's overhead and nothing else.
 * Usage: zmq_throughput <message size> <message count>; prints "msgs_per_sec <rate>". */

#include <zmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sender_args {
    void *context;
    char endpoint[256];
    size_t size;
    long count;
};

static void die(const char *what) {
    fprintf(stderr, "zmq_throughput: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void *send_all(void *raw) {
    struct sender_args *args = raw;
    void *push = zmq_socket(args->context, ZMQ_PUSH);
    if (!push) die("zmq_socket(PUSH)");
    int linger = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(push, args->endpoint) != 0) die("zmq_connect");
    char *buffer = calloc(args->size ? args->size : 1, 1);
    for (long i = 0; i < args->count; i++) {
        if (zmq_send(push, buffer, args->size, 0) < 0) die("zmq_send");
    }
    free(buffer);
    /* Returned, not closed: with LINGER 0 a close now would drop what is still queued, so main
     * closes the socket once the receiver has every message. */
    return push;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: zmq_throughput <message size> <message count>\n");
        return 2;
    }
    size_t size = (size_t)strtoul(argv[1], NULL, 10);
    long count = strtol(argv[2], NULL, 10);
    if (count < 2) { fprintf(stderr, "zmq_throughput: count must be at least 2\n"); return 2; }

    void *context = zmq_ctx_new();
    if (!context) die("zmq_ctx_new");
    void *pull = zmq_socket(context, ZMQ_PULL);
    if (!pull) die("zmq_socket(PULL)");
    int linger = 0;
    zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(pull, "tcp://127.0.0.1:*") != 0) die("zmq_bind");

    struct sender_args args = { .context = context, .size = size, .count = count };
    size_t length = sizeof args.endpoint;
    if (zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, args.endpoint, &length) != 0) die("ZMQ_LAST_ENDPOINT");

    pthread_t sender;
    if (pthread_create(&sender, NULL, send_all, &args) != 0) { fprintf(stderr, "pthread_create failed\n"); return 1; }

    zmq_msg_t message;
    zmq_msg_init(&message);
    if (zmq_msg_recv(&message, pull, 0) < 0) die("zmq_msg_recv");
    if (zmq_msg_size(&message) != size) { fprintf(stderr, "zmq_throughput: wrong size\n"); return 1; }
    double start = now_seconds();
    for (long i = 1; i < count; i++) {
        if (zmq_msg_recv(&message, pull, 0) < 0) die("zmq_msg_recv");
    }
    double elapsed = now_seconds() - start;
    if (zmq_msg_size(&message) != size) { fprintf(stderr, "zmq_throughput: wrong size\n"); return 1; }
    zmq_msg_close(&message);

    void *push = NULL;
    pthread_join(sender, &push);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(context);
    printf("msgs_per_sec %.0f\n", (double)(count - 1) / elapsed);
    return 0;
}
