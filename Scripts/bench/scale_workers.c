/* The worker host of Scripts/bench/scale: many plain MDP/0.1 workers (one DEALER each, credit 1)
 * in one process, spread over a few threads, so that thousands of workers cost the host little
 * and the broker is what the benchmark measures.
 *
 * Each worker sends READY with the service name, answers every REQUEST with a REPLY that echoes
 * the client address and the body, sends HEARTBEAT after a heartbeat interval without sending
 * anything, ignores the broker's HEARTBEATs (any message from the broker is alive enough), and
 * registers again (READY) when the broker sends DISCONNECT, as RFC 7 asks of a worker.
 *
 * Threads: each owns its sockets (created, used and closed by it alone) and waits on their
 * ZMQ_FD descriptors with one epoll set, so a wake-up costs the sockets that have something, not
 * all of them; every readable socket is drained before the next wait. ZMQ_FD only says that the
 * socket's state may have changed, so ZMQ_EVENTS is asked before each receive and after the
 * last, and a sweep every 100 ms asks every socket once more (it also sends the heartbeats due).
 *
 * Measures what scale_workers.py measures: items answered per second over the window after the
 * warm-up, and the dispatch latency (a worker's REPLY to its next REQUEST, as the worker sees it).
 * Prints "measuring" when the window opens and "window-end" when it closes, one line each on
 * stdout (so a caller can read the broker's CPU time at both), then one JSON object.
 *
 * Usage: scale_workers --endpoint E --service S --workers N [--threads T] [--io-threads I]
 *                      [--heartbeat SECONDS] [--warmup SECONDS] [--window SECONDS] */

#include <zmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAMES 64
#define SAMPLES_PER_THREAD 50000

enum { READY = 1, REQUEST = 2, REPLY = 3, HEARTBEAT = 4, DISCONNECT = 5 };

struct worker {
    void *socket;
    double last_sent;
    double replied_at; /* 0: no REPLY sent yet */
};

struct host_thread {
    pthread_t thread;
    int index;
    int count;
    struct worker *workers;
    double *samples;
    long sample_count;
    long seen;
    uint64_t random_state;
    _Atomic long served;
    _Atomic int registered;
    char pad[64];
};

static void *context;
static const char *endpoint;
static const char *service;
static double heartbeat = 1.0;
static _Atomic int measuring;
static _Atomic int stopping;
static _Atomic long protocol_errors;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "scale_workers: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static uint64_t next_random(struct host_thread *self) {
    /* xorshift64: enough for reservoir sampling. */
    uint64_t x = self->random_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return self->random_state = x;
}

static void send_frame(void *socket, const void *data, size_t size, int more) {
    while (zmq_send(socket, data, size, more ? ZMQ_SNDMORE : 0) < 0) {
        if (zmq_errno() != EINTR) die("zmq_send");
    }
}

static void send_command(struct worker *worker, int command, double now) {
    unsigned char code = (unsigned char)command;
    send_frame(worker->socket, "", 0, 1);
    send_frame(worker->socket, "MDPW01", 6, 1);
    if (command == READY) {
        send_frame(worker->socket, &code, 1, 1);
        send_frame(worker->socket, service, strlen(service), 0);
    } else {
        send_frame(worker->socket, &code, 1, 0);
    }
    worker->last_sent = now;
}

static void record_gap(struct host_thread *self, double gap) {
    self->seen++;
    /* Reservoir sampling: a fair sample of at most SAMPLES_PER_THREAD gaps per thread. */
    if (self->sample_count < SAMPLES_PER_THREAD) {
        self->samples[self->sample_count++] = gap;
    } else if ((long)(next_random(self) % (uint64_t)self->seen) < SAMPLES_PER_THREAD) {
        self->samples[next_random(self) % SAMPLES_PER_THREAD] = gap;
    }
}

/* One message from the broker: REQUEST is answered, DISCONNECT re-registers, the rest is ignored. */
static void handle(struct host_thread *self, struct worker *worker, zmq_msg_t *frames, int count) {
    if (count < 3 || zmq_msg_size(&frames[0]) != 0 || zmq_msg_size(&frames[1]) != 6
        || memcmp(zmq_msg_data(&frames[1]), "MDPW01", 6) != 0 || zmq_msg_size(&frames[2]) != 1) {
        atomic_fetch_add_explicit(&protocol_errors, 1, memory_order_relaxed);
        return;
    }
    int command = *(unsigned char *)zmq_msg_data(&frames[2]);
    double now = now_seconds();
    if (command == REQUEST && count >= 5) {
        if (atomic_load_explicit(&measuring, memory_order_relaxed) && worker->replied_at > 0) {
            record_gap(self, now - worker->replied_at);
        }
        /* The REPLY reuses the REQUEST's frames: delimiter, header, client, empty, body. */
        unsigned char reply = REPLY;
        zmq_msg_t code;
        zmq_msg_init_size(&code, 1);
        memcpy(zmq_msg_data(&code), &reply, 1);
        zmq_msg_close(&frames[2]);
        frames[2] = code;
        for (int i = 0; i < count; i++) {
            while (zmq_msg_send(&frames[i], worker->socket, i + 1 < count ? ZMQ_SNDMORE : 0) < 0) {
                if (zmq_errno() != EINTR) die("zmq_msg_send");
            }
            zmq_msg_init(&frames[i]); /* sent: the caller's close is then a no-op */
        }
        now = now_seconds();
        worker->replied_at = worker->last_sent = now;
        atomic_fetch_add_explicit(&self->served, 1, memory_order_relaxed);
    } else if (command == DISCONNECT) {
        worker->replied_at = 0;
        send_command(worker, READY, now);
    } else if (command != HEARTBEAT) {
        atomic_fetch_add_explicit(&protocol_errors, 1, memory_order_relaxed);
    }
}

/* Receives and handles every message the socket holds now. */
static void drain(struct host_thread *self, struct worker *worker) {
    zmq_msg_t frames[MAX_FRAMES];
    for (;;) {
        int events = 0;
        size_t size = sizeof events;
        if (zmq_getsockopt(worker->socket, ZMQ_EVENTS, &events, &size) != 0) {
            if (zmq_errno() == EINTR) continue;
            die("zmq_getsockopt(ZMQ_EVENTS)");
        }
        if (!(events & ZMQ_POLLIN)) return;
        int count = 0, more = 1;
        while (more) {
            zmq_msg_t *frame = &frames[count < MAX_FRAMES ? count : MAX_FRAMES - 1];
            if (count >= MAX_FRAMES) zmq_msg_close(frame); /* too many frames: keep the last slot for the rest */
            zmq_msg_init(frame);
            while (zmq_msg_recv(frame, worker->socket, ZMQ_DONTWAIT) < 0) {
                if (zmq_errno() != EINTR) die("zmq_msg_recv");
            }
            more = zmq_msg_more(frame);
            if (count < MAX_FRAMES) count++;
        }
        handle(self, worker, frames, count);
        for (int i = 0; i < count; i++) zmq_msg_close(&frames[i]);
    }
}

static void *run(void *raw) {
    struct host_thread *self = raw;
    int epoll = epoll_create1(0);
    if (epoll < 0) { perror("scale_workers: epoll_create1"); exit(1); }
    double now = now_seconds();
    for (int i = 0; i < self->count; i++) {
        struct worker *worker = &self->workers[i];
        worker->socket = zmq_socket(context, ZMQ_DEALER);
        if (!worker->socket) die("zmq_socket(DEALER)");
        int linger = 0;
        zmq_setsockopt(worker->socket, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(worker->socket, endpoint) != 0) die("zmq_connect");
        int fd;
        size_t size = sizeof fd;
        if (zmq_getsockopt(worker->socket, ZMQ_FD, &fd, &size) != 0) die("zmq_getsockopt(ZMQ_FD)");
        struct epoll_event event = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) { perror("scale_workers: epoll_ctl"); exit(1); }
        send_command(worker, READY, now);
    }
    atomic_store(&self->registered, 1);
    struct epoll_event ready[512];
    double next_sweep = now_seconds() + 0.1;
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        int count = epoll_wait(epoll, ready, 512, 50);
        if (count < 0 && errno != EINTR) { perror("scale_workers: epoll_wait"); exit(1); }
        for (int i = 0; i < count; i++) drain(self, &self->workers[ready[i].data.u32]);
        now = now_seconds();
        if (now < next_sweep) continue;
        next_sweep = now + 0.1;
        for (int i = 0; i < self->count; i++) {
            struct worker *worker = &self->workers[i];
            drain(self, worker);
            if (now - worker->last_sent >= heartbeat) send_command(worker, HEARTBEAT, now);
        }
    }
    for (int i = 0; i < self->count; i++) zmq_close(self->workers[i].socket);
    close(epoll);
    return NULL;
}

static int compare_doubles(const void *left, const void *right) {
    double a = *(const double *)left, b = *(const double *)right;
    return (a > b) - (a < b);
}

static long served_total(struct host_thread *threads, int count) {
    long total = 0;
    for (int i = 0; i < count; i++) total += atomic_load(&threads[i].served);
    return total;
}

static void sleep_seconds(double seconds) {
    struct timespec ts = { .tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void usage(void) {
    fprintf(stderr, "usage: scale_workers --endpoint E --service S --workers N [--threads T] [--io-threads I] "
                    "[--heartbeat SECONDS] [--warmup SECONDS] [--window SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int workers = 0, thread_count = 2, io_threads = 1;
    double warmup = 3.0, window = 5.0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *name = argv[i], *value = argv[++i];
        if (strcmp(name, "--endpoint") == 0) endpoint = value;
        else if (strcmp(name, "--service") == 0) service = value;
        else if (strcmp(name, "--workers") == 0) workers = atoi(value);
        else if (strcmp(name, "--threads") == 0) thread_count = atoi(value);
        else if (strcmp(name, "--io-threads") == 0) io_threads = atoi(value);
        else if (strcmp(name, "--heartbeat") == 0) heartbeat = atof(value);
        else if (strcmp(name, "--warmup") == 0) warmup = atof(value);
        else if (strcmp(name, "--window") == 0) window = atof(value);
        else usage();
    }
    if (!endpoint || !service || workers < 1 || thread_count < 1 || io_threads < 1 || heartbeat <= 0 || window <= 0) usage();
    if (thread_count > workers) thread_count = workers;

    context = zmq_ctx_new();
    if (!context) die("zmq_ctx_new");
    if (zmq_ctx_set(context, ZMQ_MAX_SOCKETS, workers + 64) != 0) die("zmq_ctx_set(ZMQ_MAX_SOCKETS)");
    if (zmq_ctx_set(context, ZMQ_IO_THREADS, io_threads) != 0) die("zmq_ctx_set(ZMQ_IO_THREADS)");

    struct host_thread *threads = calloc((size_t)thread_count, sizeof *threads);
    for (int i = 0; i < thread_count; i++) {
        struct host_thread *thread = &threads[i];
        thread->index = i;
        thread->count = workers / thread_count + (i < workers % thread_count ? 1 : 0);
        thread->workers = calloc((size_t)thread->count, sizeof *thread->workers);
        thread->samples = malloc(SAMPLES_PER_THREAD * sizeof *thread->samples);
        thread->random_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(i + 1);
        if (!thread->workers || !thread->samples) { fprintf(stderr, "scale_workers: out of memory\n"); return 1; }
        if (pthread_create(&thread->thread, NULL, run, thread) != 0) { perror("scale_workers: pthread_create"); return 1; }
    }
    for (int i = 0; i < thread_count; i++) {
        while (!atomic_load(&threads[i].registered)) sleep_seconds(0.01);
    }
    sleep_seconds(warmup);
    long served0 = served_total(threads, thread_count);
    double t0 = now_seconds();
    atomic_store(&measuring, 1);
    printf("measuring\n");
    fflush(stdout);
    sleep_seconds(window);
    atomic_store(&measuring, 0);
    long served1 = served_total(threads, thread_count);
    double t1 = now_seconds();
    printf("window-end\n");
    fflush(stdout);
    atomic_store(&stopping, 1);

    long sample_total = 0;
    for (int i = 0; i < thread_count; i++) {
        pthread_join(threads[i].thread, NULL);
        sample_total += threads[i].sample_count;
    }
    double *samples = malloc((size_t)(sample_total ? sample_total : 1) * sizeof *samples);
    long at = 0;
    for (int i = 0; i < thread_count; i++) {
        memcpy(samples + at, threads[i].samples, (size_t)threads[i].sample_count * sizeof *samples);
        at += threads[i].sample_count;
    }
    qsort(samples, (size_t)sample_total, sizeof *samples, compare_doubles);
    char p50[32] = "null", p99[32] = "null";
    if (sample_total > 0) {
        snprintf(p50, sizeof p50, "%.4f", samples[sample_total / 2] * 1000);
        snprintf(p99, sizeof p99, "%.4f", samples[(long)((double)sample_total * 0.99)] * 1000);
    }
    printf("{\"items_per_second\": %.1f, \"dispatch_p50_ms\": %s, \"dispatch_p99_ms\": %s, \"ever_served\": %ld, "
           "\"threads\": %d, \"protocol_errors\": %ld}\n",
           (double)(served1 - served0) / (t1 - t0), p50, p99, served1, thread_count, atomic_load(&protocol_errors));
    fflush(stdout);
    zmq_ctx_term(context);
    return 0;
}
