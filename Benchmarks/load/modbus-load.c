/*
 * modbus-load: a closed-loop Modbus TCP load generator.
 *
 * N connections to HOST:PORT, each sending one read request (function 03, or
 * 04 with --function 4), waiting for its response, checking it, and sending
 * the next, for a warm-up and then a measured window. A few threads (one by
 * default) each drive their share of the connections with epoll, so the
 * generator stays light next to the server it measures.
 *
 * Every response is checked: protocol id 0, the transaction id and unit id
 * of the request, the function of the request (not an exception), a byte
 * count of 2*COUNT and a length field that matches. Anything else is an
 * error (exceptions are counted apart as well); a response that breaks the
 * framing, a closed connection or a request without an answer within the
 * timeout also counts as an error, and the connection is re-opened.
 *
 * Latencies (request written -> response read) go into a log-linear
 * histogram with 128 sub-buckets per power of two (under 0.8 % error);
 * the maximum is exact.
 *
 * With --server-pid the generator also reads the server's utime+stime from
 * /proc/PID/stat at the start and the end of the measured window (so the
 * warm-up is left out) and its VmHWM/VmRSS from /proc/PID/status, and with
 * --rss-every it samples VmRSS every so many seconds during the window.
 *
 * Output: one machine-readable line starting with "RESULT " (key=value
 * pairs) on stdout, then one human line.
 *
 * --probe sends a single request and exits 0 if it was answered with data,
 * 3 if it was answered with an exception (printed), 2 if there was no
 * usable answer (connection refused, timeout, garbage).
 *
 * Build: gcc -O2 -pthread -o modbus-load modbus-load.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------ */

static struct {
    const char *host;
    const char *port;
    int connections;
    double seconds;
    double warmup;
    int address;
    int count;
    int unit;
    int function;
    int threads;
    long long requests;   /* stop after this many good responses in the window; 0: time only */
    double timeout;       /* seconds without an answer before a request is an error */
    long server_pid;
    double rss_every;     /* seconds between VmRSS samples; 0: none */
    const char *label;
    int probe;
} opt = {
    .host = "127.0.0.1", .port = "502", .connections = 1, .seconds = 5, .warmup = 1,
    .address = 0, .count = 22, .unit = 1, .function = 3, .threads = 1, .requests = 0,
    .timeout = 5, .server_pid = 0, .rss_every = 0, .label = "", .probe = 0,
};

static struct sockaddr_storage target;
static socklen_t target_length;

/* ---- time ------------------------------------------------------------------ */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t deadline)
{
    struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ull), .tv_nsec = (long)(deadline % 1000000000ull) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* ---- histogram ------------------------------------------------------------ */

/* Values in ns. Below 256: one bucket each. Above: 128 sub-buckets per power of two. */
#define SUB_BITS 7
#define SUB_COUNT (1 << SUB_BITS)              /* 128 */
#define BUCKETS ((64 - SUB_BITS) * SUB_COUNT + 2 * SUB_COUNT)

struct histogram {
    uint64_t counts[BUCKETS];
    uint64_t total;
    uint64_t max;
    uint64_t min;
    double sum;
};

static inline int bucket_of(uint64_t v)
{
    if (v < 2 * SUB_COUNT)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS;                /* v >> shift is in [128, 255] */
    return (shift + 1) * SUB_COUNT + (int)((v >> shift) - SUB_COUNT);
}

/* The middle of a bucket's range. */
static double bucket_value(int index)
{
    if (index < 2 * SUB_COUNT)
        return index;
    int shift = index / SUB_COUNT - 1;
    uint64_t mantissa = (uint64_t)(index % SUB_COUNT) + SUB_COUNT;
    double low = (double)(mantissa << shift);
    double width = (double)(1ull << shift);
    return low + (width - 1) / 2;
}

static inline void histogram_record(struct histogram *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
    if (h->min == 0 || v < h->min)
        h->min = v;
}

static void histogram_merge(struct histogram *into, const struct histogram *from)
{
    for (int i = 0; i < BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
    if (from->min != 0 && (into->min == 0 || from->min < into->min))
        into->min = from->min;
}

/* The value at quantile q (0..1), in ns, never above the exact maximum. */
static double histogram_quantile(const struct histogram *h, double q)
{
    if (h->total == 0)
        return 0;
    double exact = q * (double)h->total;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = bucket_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* ---- shared state ---------------------------------------------------------- */

enum { PHASE_WARMUP = 0, PHASE_MEASURE = 1, PHASE_STOP = 2 };
static atomic_int phase = PHASE_WARMUP;
static atomic_llong measured_good = 0;    /* only with --requests */
static atomic_ullong stop_time = 0;       /* set by whoever ends the window */

static void request_stop(uint64_t when)
{
    int expected = PHASE_MEASURE;
    if (atomic_compare_exchange_strong(&phase, &expected, PHASE_STOP)) {
        atomic_store(&stop_time, when);
    } else if (expected == PHASE_WARMUP) {
        expected = PHASE_WARMUP;
        if (atomic_compare_exchange_strong(&phase, &expected, PHASE_STOP))
            atomic_store(&stop_time, when);
    }
}

/* ---- connections ----------------------------------------------------------- */

enum { C_DOWN, C_CONNECTING, C_WAITING, C_READY };

struct conn {
    int fd;
    int state;
    uint16_t tid;
    uint64_t sent_at;
    uint64_t retry_at;
    uint8_t tx[12];
    int tx_done;                /* bytes of tx written */
    uint8_t rx[512];
    int rx_length;
    int want_out;               /* EPOLLOUT registered */
};

struct worker {
    pthread_t thread;
    int index;
    int epoll;
    struct conn *conns;
    int count;
    struct histogram *latency;
    /* window counters */
    uint64_t good;
    uint64_t errors;
    uint64_t exceptions;
    uint64_t timeouts;
    uint64_t connect_failures;
    uint64_t reconnects;
    uint64_t bad_responses;
    uint64_t exception_codes[256];
    /* warm-up counters, for the record */
    uint64_t warmup_good;
    uint64_t warmup_errors;
};

static void set_events(struct worker *w, struct conn *c, int out)
{
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    if (epoll_ctl(w->epoll, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = out;
}

static void conn_close(struct worker *w, struct conn *c, uint64_t now)
{
    if (c->fd >= 0) {
        epoll_ctl(w->epoll, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_DOWN;
    c->rx_length = 0;
    c->retry_at = now + 100 * 1000000ull;     /* re-open in 100 ms */
}

static void count_error(struct worker *w, int in_window)
{
    if (in_window)
        w->errors++;
    else
        w->warmup_errors++;
}

static void conn_open(struct worker *w, struct conn *c)
{
    int fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("modbus-load: socket");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->rx_length = 0;
    c->tx_done = 0;
    c->state = C_CONNECTING;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    c->want_out = 1;
    if (epoll_ctl(w->epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("modbus-load: epoll_ctl");
        exit(1);
    }
    c->sent_at = now_ns();    /* the connect timeout runs from here */
    if (connect(fd, (struct sockaddr *)&target, target_length) < 0 && errno != EINPROGRESS) {
        int in_window = atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_MEASURE;
        if (in_window)
            w->connect_failures++;
        count_error(w, in_window);
        conn_close(w, c, now_ns());
    }
}

/* Writes what is left of the request; returns -1 if the connection broke. */
static int conn_flush(struct worker *w, struct conn *c)
{
    while (c->tx_done < (int)sizeof c->tx) {
        ssize_t n = send(c->fd, c->tx + c->tx_done, sizeof c->tx - (size_t)c->tx_done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->want_out)
                    set_events(w, c, 1);
                return 0;
            }
            return -1;
        }
        c->tx_done += (int)n;
    }
    if (c->want_out)
        set_events(w, c, 0);
    return 0;
}

/* Encodes and sends the next request (MBAP header + PDU). */
static int conn_send(struct worker *w, struct conn *c)
{
    c->tid++;
    uint8_t *p = c->tx;
    p[0] = (uint8_t)(c->tid >> 8);         /* transaction id */
    p[1] = (uint8_t)c->tid;
    p[2] = 0;                               /* protocol id: Modbus */
    p[3] = 0;
    p[4] = 0;                               /* length: unit + PDU = 6 */
    p[5] = 6;
    p[6] = (uint8_t)opt.unit;
    p[7] = (uint8_t)opt.function;
    p[8] = (uint8_t)(opt.address >> 8);
    p[9] = (uint8_t)opt.address;
    p[10] = (uint8_t)(opt.count >> 8);
    p[11] = (uint8_t)opt.count;
    c->tx_done = 0;
    c->state = C_WAITING;
    c->sent_at = now_ns();
    return conn_flush(w, c);
}

/*
 * Judges one complete frame: 1 a good answer, 2 an exception (its code in
 * *exception), 0 a wrong but well-framed answer (the connection stays), -1
 * when the stream can no longer be trusted.
 */
static int judge(const struct conn *c, const uint8_t *f, int size, uint8_t *exception)
{
    uint16_t tid = (uint16_t)(f[0] << 8 | f[1]);
    if (tid != c->tid)
        return -1;              /* answers out of step with requests: re-open */
    if (size < 9 || f[6] != (uint8_t)opt.unit)
        return 0;
    uint8_t function = f[7];
    if (function == (uint8_t)(opt.function | 0x80)) {
        *exception = f[8];
        return 2;
    }
    if (function != (uint8_t)opt.function)
        return 0;
    if (f[8] != 2 * opt.count || size != 9 + 2 * opt.count)
        return 0;
    return 1;
}

/* Handles readable data; returns -1 if the connection must be re-opened. */
static int conn_read(struct worker *w, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->rx + c->rx_length, sizeof c->rx - (size_t)c->rx_length, 0);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        uint64_t arrived = now_ns();
        c->rx_length += (int)n;
        while (c->rx_length >= 7) {
            const uint8_t *f = c->rx;
            int length = f[4] << 8 | f[5];
            if (f[2] != 0 || f[3] != 0 || length < 2 || length > 254)
                return -1;
            int size = 6 + length;
            if (c->rx_length < size)
                break;
            if (c->state != C_WAITING)
                return -1;      /* an answer nobody asked for */
            int in_window = atomic_load_explicit(&phase, memory_order_acquire) == PHASE_MEASURE;
            uint8_t exception = 0;
            int verdict = judge(c, f, size, &exception);
            if (verdict < 0)
                return -1;
            if (verdict == 1) {
                if (in_window) {
                    histogram_record(w->latency, arrived - c->sent_at);
                    w->good++;
                    if (opt.requests > 0 && atomic_fetch_add(&measured_good, 1) + 1 >= opt.requests)
                        request_stop(arrived);
                } else {
                    w->warmup_good++;
                }
            } else {
                if (in_window && verdict == 2) {
                    w->exceptions++;
                    w->exception_codes[exception]++;
                } else if (in_window) {
                    w->bad_responses++;
                }
                count_error(w, in_window);
            }
            memmove(c->rx, c->rx + size, (size_t)(c->rx_length - size));
            c->rx_length -= size;
            if (c->rx_length != 0)
                return -1;      /* more than one answer to one request */
            c->state = C_READY;     /* between requests */
            if (atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_STOP)
                return 0;
            /* Closed loop: nothing more can come before the next answer, so no
             * second recv() to see EAGAIN; level-triggered epoll reports the rest. */
            return conn_send(w, c) < 0 ? -1 : 0;
        }
        if (c->rx_length == (int)sizeof c->rx)
            return -1;
    }
}

/* A connection that never came up: counted (inside the window) and closed. */
static void connect_failed(struct worker *w, struct conn *c)
{
    int in_window = atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_MEASURE;
    if (in_window)
        w->connect_failures++;
    count_error(w, in_window);
    conn_close(w, c, now_ns());
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
    uint64_t now;
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            connect_failed(w, c);
            return;
        }
        if (events & EPOLLOUT) {
            int error = 0;
            socklen_t length = sizeof error;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length);
            if (error != 0) {
                connect_failed(w, c);
                return;
            }
            set_events(w, c, 0);
            if (conn_send(w, c) < 0) {
                count_error(w, atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_MEASURE);
                conn_close(w, c, now_ns());
            }
        }
        return;
    }
    if ((events & EPOLLOUT) && c->state == C_WAITING && c->tx_done < (int)sizeof c->tx) {
        if (conn_flush(w, c) < 0)
            goto broken;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (conn_read(w, c) < 0)
            goto broken;
    }
    return;
broken:
    now = now_ns();
    {
        int in_window = atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_MEASURE;
        if (in_window)
            w->reconnects++;
        count_error(w, in_window);
    }
    conn_close(w, c, now);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[256];
    for (int i = 0; i < w->count; i++)
        conn_open(w, &w->conns[i]);
    uint64_t timeout_ns = (uint64_t)(opt.timeout * 1e9);
    uint64_t next_tick = now_ns() + 50 * 1000000ull;
    while (atomic_load_explicit(&phase, memory_order_acquire) != PHASE_STOP) {
        int n = epoll_wait(w->epoll, events, 256, 20);
        if (n < 0 && errno != EINTR) {
            perror("modbus-load: epoll_wait");
            exit(1);
        }
        for (int i = 0; i < n; i++)
            conn_event(w, events[i].data.ptr, events[i].events);
        uint64_t now = now_ns();
        if (now >= next_tick) {
            next_tick = now + 50 * 1000000ull;
            int stopping = atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_STOP;
            for (int i = 0; i < w->count && !stopping; i++) {
                struct conn *c = &w->conns[i];
                if (c->state == C_DOWN && now >= c->retry_at) {
                    conn_open(w, c);
                } else if ((c->state == C_WAITING || c->state == C_CONNECTING) && now - c->sent_at > timeout_ns) {
                    int in_window = atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_MEASURE;
                    if (in_window)
                        w->timeouts++;
                    count_error(w, in_window);
                    conn_close(w, c, now);
                }
            }
        }
    }
    for (int i = 0; i < w->count; i++) {
        if (w->conns[i].fd >= 0)
            close(w->conns[i].fd);
    }
    return NULL;
}

/* ---- /proc ------------------------------------------------------------------ */

/* utime+stime of a process, in clock ticks; -1 if unreadable. */
static long long proc_cpu_ticks(long pid)
{
    char path[64], buffer[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buffer, 1, sizeof buffer - 1, f);
    fclose(f);
    buffer[n] = 0;
    char *p = strrchr(buffer, ')');
    if (p == NULL)
        return -1;
    p += 2;                     /* field 3, the state */
    unsigned long long utime = 0, stime = 0;
    /* fields 3..13 skipped, then 14 utime and 15 stime */
    if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (long long)(utime + stime);
}

/* A "Vm..." line of /proc/PID/status in KiB; -1 if unreadable. */
static long long proc_status_kib(long pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long value = -1;
    size_t key_length = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, key_length) == 0 && line[key_length] == ':') {
            value = atoll(line + key_length + 1);
            break;
        }
    }
    fclose(f);
    return value;
}

static double self_cpu_seconds(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
        + (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

/* ---- probe ----------------------------------------------------------------- */

static int probe(void)
{
    int fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 2;
    struct timeval tv = { .tv_sec = (time_t)opt.timeout, .tv_usec = (suseconds_t)((opt.timeout - (time_t)opt.timeout) * 1e6) };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&target, target_length) < 0) {
        printf("probe: connect: %s\n", strerror(errno));
        close(fd);
        return 2;
    }
    uint8_t q[12] = { 0x12, 0x34, 0, 0, 0, 6, (uint8_t)opt.unit, (uint8_t)opt.function,
                      (uint8_t)(opt.address >> 8), (uint8_t)opt.address,
                      (uint8_t)(opt.count >> 8), (uint8_t)opt.count };
    if (send(fd, q, sizeof q, MSG_NOSIGNAL) != (ssize_t)sizeof q) {
        printf("probe: send failed\n");
        close(fd);
        return 2;
    }
    uint8_t r[512];
    int have = 0, need = 7;
    while (have < need) {
        ssize_t n = recv(fd, r + have, sizeof r - (size_t)have, 0);
        if (n <= 0) {
            printf("probe: no answer\n");
            close(fd);
            return 2;
        }
        have += (int)n;
        if (have >= 7) {
            int length = r[4] << 8 | r[5];
            if (r[2] != 0 || r[3] != 0 || length < 2 || length > 254) {
                printf("probe: not a Modbus TCP answer\n");
                close(fd);
                return 2;
            }
            need = 6 + length;
        }
    }
    close(fd);
    if (r[0] != 0x12 || r[1] != 0x34 || need < 9) {
        printf("probe: wrong transaction id or short answer\n");
        return 2;
    }
    if (r[7] == (uint8_t)(opt.function | 0x80)) {
        printf("probe: exception 0x%02X\n", r[8]);
        return 3;
    }
    if (r[7] != opt.function || r[8] != 2 * opt.count || need != 9 + 2 * opt.count) {
        printf("probe: malformed answer\n");
        return 2;
    }
    printf("probe: ok, %d registers, first 0x%02X%02X\n", opt.count, r[9], r[10]);
    return 0;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
        "usage: modbus-load [options]\n"
        "  -H, --host HOST          server address (127.0.0.1)\n"
        "  -p, --port PORT          server port (502)\n"
        "  -c, --connections N      concurrent connections (1)\n"
        "  -d, --seconds S          measured window in seconds (5); with --requests, a limit (0: none)\n"
        "  -w, --warmup S           warm-up seconds before the window (1)\n"
        "  -a, --address A          first register, 0-based PDU address (0)\n"
        "  -n, --count N            registers per read, 1-125 (22)\n"
        "  -u, --unit U             unit id (1)\n"
        "  -f, --function F         3 (holding) or 4 (input) (3)\n"
        "  -t, --threads T          generator threads (1)\n"
        "  -r, --requests N         end the window after N good responses\n"
        "  -T, --timeout S          seconds without an answer before a request is an error (5)\n"
        "  -P, --server-pid PID     measure this process's CPU time and memory over the window\n"
        "  -s, --rss-every S        with -P, sample VmRSS every S seconds (stderr lines \"RSS ...\")\n"
        "  -l, --label TEXT         a label copied into the output\n"
        "      --probe              send one request: exit 0 data, 3 exception, 2 no answer\n");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "host", required_argument, 0, 'H' },       { "port", required_argument, 0, 'p' },
        { "connections", required_argument, 0, 'c' }, { "seconds", required_argument, 0, 'd' },
        { "warmup", required_argument, 0, 'w' },     { "address", required_argument, 0, 'a' },
        { "count", required_argument, 0, 'n' },      { "unit", required_argument, 0, 'u' },
        { "function", required_argument, 0, 'f' },   { "threads", required_argument, 0, 't' },
        { "requests", required_argument, 0, 'r' },   { "timeout", required_argument, 0, 'T' },
        { "server-pid", required_argument, 0, 'P' }, { "rss-every", required_argument, 0, 's' },
        { "label", required_argument, 0, 'l' },      { "probe", no_argument, 0, 'X' },
        { "help", no_argument, 0, 'h' },             { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "H:p:c:d:w:a:n:u:f:t:r:T:P:s:l:h", longs, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'c': opt.connections = atoi(optarg); break;
        case 'd': opt.seconds = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'a': opt.address = atoi(optarg); break;
        case 'n': opt.count = atoi(optarg); break;
        case 'u': opt.unit = atoi(optarg); break;
        case 'f': opt.function = atoi(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'r': opt.requests = atoll(optarg); break;
        case 'T': opt.timeout = atof(optarg); break;
        case 'P': opt.server_pid = atol(optarg); break;
        case 's': opt.rss_every = atof(optarg); break;
        case 'l': opt.label = optarg; break;
        case 'X': opt.probe = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || opt.connections < 1 || opt.count < 1 || opt.count > 125 || opt.address < 0
        || opt.address > 65535 || opt.unit < 0 || opt.unit > 255 || (opt.function != 3 && opt.function != 4)
        || opt.threads < 1 || opt.seconds < 0 || opt.warmup < 0 || opt.timeout <= 0 || opt.requests < 0
        || (opt.seconds == 0 && opt.requests == 0)) {
        usage(stderr);
        return 2;
    }
    if (opt.threads > opt.connections)
        opt.threads = opt.connections;

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *found;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "modbus-load: %s:%s: %s\n", opt.host, opt.port, gai_strerror(rc));
        return 2;
    }
    memcpy(&target, found->ai_addr, found->ai_addrlen);
    target_length = found->ai_addrlen;
    freeaddrinfo(found);
    signal(SIGPIPE, SIG_IGN);

    if (opt.probe)
        return probe();

    /* Raise the descriptor limit if many connections are asked for. */
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < (rlim_t)opt.connections + 64) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }

    struct worker *workers = calloc((size_t)opt.threads, sizeof *workers);
    struct conn *conns = calloc((size_t)opt.connections, sizeof *conns);
    if (workers == NULL || conns == NULL) {
        fprintf(stderr, "modbus-load: out of memory\n");
        return 1;
    }
    for (int i = 0; i < opt.connections; i++) {
        conns[i].fd = -1;
        conns[i].tid = (uint16_t)(i * 4099);  /* different ids on different connections */
    }
    int start = 0;
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        int share = opt.connections / opt.threads + (t < opt.connections % opt.threads);
        w->index = t;
        w->conns = conns + start;
        w->count = share;
        start += share;
        w->latency = calloc(1, sizeof *w->latency);
        w->epoll = epoll_create1(EPOLL_CLOEXEC);
        if (w->latency == NULL || w->epoll < 0) {
            fprintf(stderr, "modbus-load: cannot set up worker\n");
            return 1;
        }
    }

    uint64_t t0 = now_ns();
    uint64_t window_start = t0 + (uint64_t)(opt.warmup * 1e9);
    uint64_t window_end = opt.seconds > 0 ? window_start + (uint64_t)(opt.seconds * 1e9) : UINT64_MAX;
    for (int t = 0; t < opt.threads; t++) {
        if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0) {
            fprintf(stderr, "modbus-load: pthread_create failed\n");
            return 1;
        }
    }

    /* The coordinator: opens and closes the window, reads /proc around it. */
    sleep_until(window_start);
    long long cpu_before = opt.server_pid ? proc_cpu_ticks(opt.server_pid) : -1;
    long long rss_start = opt.server_pid ? proc_status_kib(opt.server_pid, "VmRSS") : -1;
    double self_before = self_cpu_seconds();
    uint64_t measured_from = now_ns();
    atomic_store(&phase, PHASE_MEASURE);
    if (opt.rss_every > 0 && opt.server_pid)
        fprintf(stderr, "RSS t=0 kib=%lld\n", rss_start);

    uint64_t step = 10 * 1000000ull;        /* 10 ms: catch an end by --requests promptly */
    uint64_t next_sample = opt.rss_every > 0 ? measured_from + (uint64_t)(opt.rss_every * 1e9) : UINT64_MAX;
    long long rss_max = rss_start, rss_min = rss_start;
    for (;;) {
        uint64_t now = now_ns();
        if (atomic_load(&phase) == PHASE_STOP)
            break;
        if (now >= window_end) {
            request_stop(window_end);
            break;
        }
        if (now >= next_sample) {
            long long rss = proc_status_kib(opt.server_pid, "VmRSS");
            if (rss > rss_max)
                rss_max = rss;
            if (rss >= 0 && (rss_min < 0 || rss < rss_min))
                rss_min = rss;
            long long done = 0;
            if (opt.requests > 0) {
                done = atomic_load(&measured_good);
            } else {
                for (int t = 0; t < opt.threads; t++)
                    done += (long long)workers[t].good;   /* racy read, for progress only */
            }
            fprintf(stderr, "RSS t=%.0f kib=%lld requests=%lld\n", (now - measured_from) / 1e9, rss, done);
            next_sample += (uint64_t)(opt.rss_every * 1e9);
        }
        uint64_t wake = now + step;
        if (wake > window_end)
            wake = window_end;
        sleep_until(wake);
    }
    long long cpu_after = opt.server_pid ? proc_cpu_ticks(opt.server_pid) : -1;
    long long rss_end = opt.server_pid ? proc_status_kib(opt.server_pid, "VmRSS") : -1;
    long long hwm = opt.server_pid ? proc_status_kib(opt.server_pid, "VmHWM") : -1;
    double self_after = self_cpu_seconds();
    uint64_t measured_to = atomic_load(&stop_time);
    if (measured_to == 0 || measured_to < measured_from)
        measured_to = now_ns();
    if (rss_end > rss_max)
        rss_max = rss_end;
    if (opt.rss_every > 0 && opt.server_pid)
        fprintf(stderr, "RSS t=%.1f kib=%lld (end)\n", (measured_to - measured_from) / 1e9, rss_end);

    for (int t = 0; t < opt.threads; t++)
        pthread_join(workers[t].thread, NULL);

    struct histogram *all = calloc(1, sizeof *all);
    uint64_t good = 0, errors = 0, exceptions = 0, timeouts = 0, connect_failures = 0, reconnects = 0, bad = 0;
    uint64_t warmup_good = 0, warmup_errors = 0;
    uint64_t codes[256] = { 0 };
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        histogram_merge(all, w->latency);
        good += w->good;
        errors += w->errors;
        exceptions += w->exceptions;
        timeouts += w->timeouts;
        connect_failures += w->connect_failures;
        reconnects += w->reconnects;
        bad += w->bad_responses;
        warmup_good += w->warmup_good;
        warmup_errors += w->warmup_errors;
        for (int i = 0; i < 256; i++)
            codes[i] += w->exception_codes[i];
    }
    double elapsed = (measured_to - measured_from) / 1e9;
    double rps = elapsed > 0 ? good / elapsed : 0;
    double p50 = histogram_quantile(all, 0.50) / 1e3;
    double p90 = histogram_quantile(all, 0.90) / 1e3;
    double p99 = histogram_quantile(all, 0.99) / 1e3;
    double p999 = histogram_quantile(all, 0.999) / 1e3;
    double max = all->max / 1e3;
    double mean = all->total ? all->sum / all->total / 1e3 : 0;
    long ticks = sysconf(_SC_CLK_TCK);
    double server_cpu_s = (cpu_before >= 0 && cpu_after >= 0) ? (double)(cpu_after - cpu_before) / (double)ticks : -1;
    double server_us_per_req = (server_cpu_s >= 0 && good > 0) ? server_cpu_s * 1e6 / good : -1;
    double client_us_per_req = good > 0 ? (self_after - self_before) * 1e6 / good : -1;

    char exception_list[512] = "none";
    if (exceptions > 0) {
        int at = 0;
        for (int i = 0; i < 256; i++) {
            if (codes[i])
                at += snprintf(exception_list + at, sizeof exception_list - (size_t)at, "%s0x%02X:%llu",
                               at ? "," : "", i, (unsigned long long)codes[i]);
        }
    }

    printf("RESULT label=%s host=%s port=%s connections=%d threads=%d function=%d address=%d count=%d unit=%d "
           "warmup_s=%.2f seconds=%.3f requests=%llu rps=%.1f "
           "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f "
           "errors=%llu exceptions=%llu exception_codes=%s bad_responses=%llu timeouts=%llu reconnects=%llu "
           "connect_failures=%llu warmup_requests=%llu warmup_errors=%llu "
           "server_pid=%ld server_cpu_s=%.2f server_cpu_us_per_req=%.2f server_hwm_kib=%lld "
           "server_rss_start_kib=%lld server_rss_end_kib=%lld server_rss_max_kib=%lld server_rss_min_kib=%lld "
           "client_cpu_us_per_req=%.2f\n",
           opt.label[0] ? opt.label : "-", opt.host, opt.port, opt.connections, opt.threads, opt.function,
           opt.address, opt.count, opt.unit, opt.warmup, elapsed, (unsigned long long)good, rps,
           p50, p90, p99, p999, max, mean,
           (unsigned long long)errors, (unsigned long long)exceptions, exception_list, (unsigned long long)bad,
           (unsigned long long)timeouts, (unsigned long long)reconnects, (unsigned long long)connect_failures,
           (unsigned long long)warmup_good, (unsigned long long)warmup_errors,
           opt.server_pid, server_cpu_s, server_us_per_req, hwm, rss_start, rss_end, rss_max, rss_min,
           client_us_per_req);
    printf("%s%s%d connection%s, %d registers at %d: %.0f req/s over %.2f s; latency p50 %.1f us, p90 %.1f us, "
           "p99 %.1f us, max %.1f us; %llu errors",
           opt.label[0] ? opt.label : "", opt.label[0] ? ": " : "", opt.connections, opt.connections == 1 ? "" : "s",
           opt.count, opt.address, rps, elapsed, p50, p90, p99, max, (unsigned long long)errors);
    if (server_us_per_req >= 0)
        printf("; server %.2f us CPU/request, peak RSS %.1f MiB", server_us_per_req, hwm / 1024.0);
    printf("\n");
    fflush(stdout);
    return 0;
}
