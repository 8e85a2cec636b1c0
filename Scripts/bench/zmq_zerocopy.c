/* What a 1 KiB frame costs to send over inproc: zmq_send (libzmq copies the bytes into a
 * message it allocates) against zmq_msg_init_data (libzmq takes the buffer as it is and calls a
 * free function when the receiver is done with it). One sending and one receiving thread; the
 * sender makes each payload in a fresh buffer, as a program that sends what it just read does.
 *
 *   zmq_zerocopy COUNT SIZE MODE     MODE 0: zmq_send, 1: zmq_msg_init_data
 *
 * Prints one line: the mode, the sending and receiving threads' CPU seconds and the wall time.
 * Scripts/bench/zerocopy builds it and runs both modes in turn. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static void *context;
static int count, size;
static double receiver_cpu;

static double thread_cpu(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

static double wall(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

static void free_buffer(void *data, void *hint) {
    (void)hint;
    free(data);
}

/* Receives every frame and copies it out, as the receiving side of a program keeps its bytes. */
static void *receive(void *unused) {
    (void)unused;
    void *pull = zmq_socket(context, ZMQ_PULL);
    zmq_connect(pull, "inproc://frames");
    double start = thread_cpu();
    long checksum = 0;
    for (int index = 0; index < count; index++) {
        zmq_msg_t message;
        zmq_msg_init(&message);
        if (zmq_msg_recv(&message, pull, 0) < 0) { perror("zmq_msg_recv"); exit(1); }
        size_t length = zmq_msg_size(&message);
        char *kept = malloc(length);
        memcpy(kept, zmq_msg_data(&message), length);
        checksum += kept[length / 2];
        free(kept);
        zmq_msg_close(&message);
    }
    receiver_cpu = thread_cpu() - start;
    if (checksum == 42) fputc(' ', stderr); /* keeps the copies from being optimised away */
    zmq_close(pull);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s COUNT SIZE MODE\n", argv[0]); return 2; }
    count = atoi(argv[1]);
    size = atoi(argv[2]);
    int mode = atoi(argv[3]);
    context = zmq_ctx_new();
    void *push = zmq_socket(context, ZMQ_PUSH);
    int highWater = 100000;
    zmq_setsockopt(push, ZMQ_SNDHWM, &highWater, sizeof highWater);
    zmq_bind(push, "inproc://frames");
    pthread_t receiver;
    pthread_create(&receiver, NULL, receive, NULL);
    double started = wall(), start = thread_cpu();
    for (int index = 0; index < count; index++) {
        char *payload = malloc(size);
        memset(payload, index, size);
        if (mode == 0) {
            if (zmq_send(push, payload, size, 0) < 0) { perror("zmq_send"); return 1; }
            free(payload);
        } else {
            zmq_msg_t message;
            zmq_msg_init_data(&message, payload, size, free_buffer, NULL);
            if (zmq_msg_send(&message, push, 0) < 0) { perror("zmq_msg_send"); return 1; }
        }
    }
    double sender_cpu = thread_cpu() - start;
    pthread_join(receiver, NULL);
    printf("mode %s sender_cpu %.3f receiver_cpu %.3f wall %.3f\n", mode == 0 ? "copy" : "zerocopy", sender_cpu, receiver_cpu,
           wall() - started);
    zmq_close(push);
    zmq_ctx_term(context);
    return 0;
}
