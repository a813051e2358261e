/*
 * echo_client: a small epoll load generator for echo servers (TCP and WebSocket).
 *
 * N connections, each with exactly one message in flight: send a message, wait for the whole
 * reply, check it, send the next one. Counts the round trips completed in a window of D seconds
 * that starts after a warm-up, and prints one JSON line on stdout (total_msgs/total_seconds
 * cover the warm-up too: with the server's CPU time over the same span they give its cost per
 * message, a figure that other work on the machine disturbs far less than the rate).
 *
 * Modes:
 *   length  4-byte big-endian length prefix + payload; the reply must be the identical bytes.
 *   raw     the payload alone; the reply must have the same length.
 *   ws      HTTP Upgrade handshake, then masked text frames carrying the payload; the reply must
 *           be an unmasked text frame (FIN set) with the same payload. Any bytes the server sends
 *           unasked (a greeting on open) count as an error.
 *   idle    connect only, then hold the connections (implies --hold).
 *
 * --broadcast R (ws mode): time how long one message takes to reach every connection. After the
 * upgrades, R rounds: the first connection sends one text frame; the round ends when every
 * connection has received a complete data frame (any payload: the server's broadcast) or after
 * --round-timeout seconds (the run then stops: rounds_completed < R); rounds are --interval
 * seconds apart. Prints the median and maximum time from the send to the last (and
 * to the first) delivery.
 *
 * Every connection is first set up (connected, upgraded in ws mode, one checked round trip in the
 * load modes) with at most --connect-batch set-ups in progress, so a large N does not overflow
 * the server's accept backlog. Then either the load runs, or with --hold the client prints
 * {"event":"ready",...} and holds the connections until stdin closes or SIGTERM/SIGINT arrives
 * (used to measure a server's memory per idle connection). The client raises its own
 * RLIMIT_NOFILE soft limit to the hard limit.
 *
 * Build: gcc -O2 -o echo_client echo_client.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_LENGTH, MODE_RAW, MODE_WS, MODE_IDLE };
enum state { ST_CONNECTING, ST_HANDSHAKE, ST_SENDING, ST_RECEIVING, ST_READY, ST_DEAD };

static const char *const mode_names[] = {"length", "raw", "ws", "idle"};

#define HIST_US 1000000 /* 1 us buckets up to 1 s, then one overflow bucket */
#define HANDSHAKE_BUF 4096
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455's example key/accept pair */

struct conn {
    int fd;
    enum state state;
    uint32_t events; /* what epoll currently watches */
    size_t sent;     /* bytes of the current outgoing message already written */
    size_t got;      /* bytes of the current reply (or handshake response) already read */
    uint64_t t_send_ns;
    unsigned char *rbuf;
    /* --broadcast: incremental parser of the server's frames */
    unsigned char hdr[10];
    uint8_t hdr_got;
    uint8_t data_frame; /* the frame being read is a final data frame (counts as a delivery) */
    uint8_t delivered;  /* received this round's broadcast */
    uint64_t payload_left;
};

static struct {
    enum mode mode;
    const char *host;
    const char *port;
    const char *path;
    int connections;
    size_t payload;
    double duration;
    double warmup;
    int hold;
    int connect_batch;
    double setup_timeout;
    int broadcast;
    double interval;
    double round_timeout;
} opt = {MODE_LENGTH, "127.0.0.1", "9501", "/", 50, 64, 5.0, 1.0, 0, 128, 60.0, 0, 0.2, 10.0};

static unsigned char *request;  /* the bytes sent for every message */
static size_t request_len;
static unsigned char *expected; /* the bytes every reply must equal (NULL: check the length only) */
static size_t expected_len;
static char *handshake;
static size_t handshake_len;

static struct conn *conns;
static int epfd;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static volatile sig_atomic_t stop_flag;

static int setting_up = 1; /* set-up phase: a finished round trip makes the connection ready */
static int measuring;
static int in_setup, next_conn, ready_count, alive;
static uint64_t errors, connect_errors, msgs;
static int last_connect_errno;
static uint64_t total_msgs; /* round trips since the load started, warm-up included */
static uint64_t hist[HIST_US + 1];
static int delivered_count;          /* connections that received the current broadcast */
static uint64_t first_rx_ns, last_rx_ns;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void die(const char *msg) {
    fprintf(stderr, "echo_client: %s: %s\n", msg, strerror(errno));
    exit(2);
}

static void usage(void) {
    fprintf(stderr,
            "usage: echo_client [--mode length|raw|ws|idle] [--host H] [--port P] [--path /]\n"
            "                   [-c connections] [-s payload_bytes] [-d seconds] [-w warmup_seconds]\n"
            "                   [--hold] [--connect-batch N] [--setup-timeout seconds]\n"
            "                   [--broadcast rounds] [--interval seconds] [--round-timeout seconds]\n");
    exit(2);
}

static void build_messages(void) {
    unsigned char *payload = malloc(opt.payload + 1);
    for (size_t i = 0; i < opt.payload; i++) payload[i] = (unsigned char)('a' + i % 26);
    if (opt.mode == MODE_LENGTH) {
        request_len = 4 + opt.payload;
        request = malloc(request_len);
        uint32_t n = (uint32_t)opt.payload;
        request[0] = n >> 24;
        request[1] = n >> 16;
        request[2] = n >> 8;
        request[3] = n;
        memcpy(request + 4, payload, opt.payload);
        expected = request;
        expected_len = request_len;
    } else if (opt.mode == MODE_RAW) {
        request = malloc(opt.payload + 1);
        memcpy(request, payload, opt.payload);
        request_len = expected_len = opt.payload;
    } else if (opt.mode == MODE_WS) {
        static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
        unsigned char header[10];
        size_t h = 0;
        header[h++] = 0x81; /* FIN + text */
        if (opt.payload < 126) {
            header[h++] = (unsigned char)opt.payload;
        } else if (opt.payload < 65536) {
            header[h++] = 126;
            header[h++] = (unsigned char)(opt.payload >> 8);
            header[h++] = (unsigned char)opt.payload;
        } else {
            header[h++] = 127;
            for (int i = 7; i >= 0; i--) header[h++] = (unsigned char)((uint64_t)opt.payload >> (8 * i));
        }
        expected_len = h + opt.payload;
        expected = malloc(expected_len);
        memcpy(expected, header, h);
        memcpy(expected + h, payload, opt.payload);
        request_len = h + 4 + opt.payload;
        request = malloc(request_len);
        memcpy(request, header, h);
        request[1] |= 0x80; /* the MASK bit */
        memcpy(request + h, mask, 4);
        for (size_t i = 0; i < opt.payload; i++) request[h + 4 + i] = payload[i] ^ mask[i % 4];
        handshake = malloc(1024 + strlen(opt.path) + strlen(opt.host));
        handshake_len = (size_t)sprintf(handshake,
                                        "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                                        "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                                        "Sec-WebSocket-Version: 13\r\n\r\n",
                                        opt.path, opt.host, opt.port);
    }
    free(payload);
}

static void resolve(void) {
    struct addrinfo hints = {0}, *res;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "echo_client: cannot resolve %s:%s: %s\n", opt.host, opt.port, gai_strerror(rc));
        exit(2);
    }
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.connections + 16) {
        fprintf(stderr, "echo_client: RLIMIT_NOFILE %llu is too low for %d connections\n",
                (unsigned long long)rl.rlim_cur, opt.connections);
        exit(2);
    }
}

static void watch(struct conn *c, uint32_t events) {
    if (c->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
    c->events = events;
}

static void launch_setups(void);

/* A connection finished its set-up (ready or dead): make room for the next one. */
static void setup_done(struct conn *c) {
    in_setup--;
    if (c->state == ST_READY) ready_count++;
    launch_setups();
}

/* Close a connection for good, counting the failure in *counter. */
static void drop_conn(struct conn *c, uint64_t *counter) {
    if (c->state == ST_DEAD) return;
    int was_setting_up = setting_up && c->state != ST_READY;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = ST_DEAD;
    alive--;
    (*counter)++;
    if (was_setting_up) setup_done(c);
}

static void kill_conn(struct conn *c) { drop_conn(c, &errors); }

static void start_connect(struct conn *c) {
    c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_CONNECTING;
    c->sent = c->got = 0;
    in_setup++;
    alive++;
    if (connect(c->fd, (struct sockaddr *)&addr, addrlen) != 0 && errno != EINPROGRESS) {
        last_connect_errno = errno;
        close(c->fd);
        c->state = ST_DEAD;
        alive--;
        connect_errors++;
        setup_done(c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
    c->events = EPOLLOUT;
}

static void launch_setups(void) {
    while (in_setup < opt.connect_batch && next_conn < opt.connections) start_connect(&conns[next_conn++]);
}

/* Write the rest of buf; returns 1 when all of it is written (0: wait for EPOLLOUT, or dead). */
static int flush_out(struct conn *c, const void *buf, size_t len) {
    while (c->sent < len) {
        ssize_t n = send(c->fd, (const char *)buf + c->sent, len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(c, EPOLLIN | EPOLLOUT);
            return 0;
        } else {
            kill_conn(c);
            return 0;
        }
    }
    watch(c, EPOLLIN);
    return 1;
}

static void send_message(struct conn *c) {
    if (c->state != ST_SENDING) {
        c->state = ST_SENDING;
        c->sent = 0;
        c->t_send_ns = now_ns();
    }
    if (flush_out(c, request, request_len)) {
        c->state = ST_RECEIVING;
        c->got = 0;
    }
}

static void mark_ready(struct conn *c) {
    c->state = ST_READY;
    watch(c, EPOLLIN); /* so a server-side close is noticed */
    setup_done(c);
}

static void on_reply(struct conn *c) {
    if (expected && memcmp(c->rbuf, expected, expected_len) != 0) {
        kill_conn(c);
        return;
    }
    if (setting_up) {
        mark_ready(c);
        return;
    }
    total_msgs++;
    if (measuring) {
        uint64_t us = (now_ns() - c->t_send_ns) / 1000;
        hist[us < HIST_US ? us : HIST_US]++;
        msgs++;
    }
    send_message(c);
}

static void on_connected(struct conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        last_connect_errno = err;
        drop_conn(c, &connect_errors);
        return;
    }
    if (opt.mode == MODE_IDLE) {
        mark_ready(c);
    } else if (opt.mode == MODE_WS) {
        c->state = ST_HANDSHAKE;
        c->sent = c->got = 0;
        flush_out(c, handshake, handshake_len);
    } else {
        send_message(c);
    }
}

static void on_handshake_data(struct conn *c) {
    ssize_t n = recv(c->fd, c->rbuf + c->got, HANDSHAKE_BUF - 1 - c->got, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        kill_conn(c);
        return;
    }
    c->got += (size_t)n;
    c->rbuf[c->got] = 0;
    char *end = strstr((char *)c->rbuf, "\r\n\r\n");
    if (!end) {
        if (c->got >= HANDSHAKE_BUF - 1) kill_conn(c);
        return;
    }
    int ok = strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) == 0 && strstr((char *)c->rbuf, WS_ACCEPT) != NULL &&
             (size_t)(end + 4 - (char *)c->rbuf) == c->got;
    if (!ok) {
        kill_conn(c);
        return;
    }
    if (opt.broadcast)
        mark_ready(c);
    else
        send_message(c);
}

static void on_delivery(struct conn *c) {
    if (c->delivered) return;
    c->delivered = 1;
    delivered_count++;
    last_rx_ns = now_ns();
    if (!first_rx_ns) first_rx_ns = last_rx_ns;
}

/* --broadcast: parse whatever frames arrived, noting the first complete data frame of the round. */
static void on_broadcast_data(struct conn *c) {
    static unsigned char buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        kill_conn(c);
        return;
    }
    for (ssize_t i = 0; i < n;) {
        if (c->payload_left) {
            uint64_t take = (uint64_t)(n - i) < c->payload_left ? (uint64_t)(n - i) : c->payload_left;
            c->payload_left -= take;
            i += (ssize_t)take;
            if (!c->payload_left && c->data_frame) on_delivery(c);
            continue;
        }
        c->hdr[c->hdr_got++] = buf[i++];
        if (c->hdr_got < 2) continue;
        if (c->hdr[1] & 0x80) { /* servers must not mask */
            kill_conn(c);
            return;
        }
        unsigned len7 = c->hdr[1] & 0x7f;
        unsigned need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        if (c->hdr_got < need) continue;
        uint64_t length = len7;
        if (len7 >= 126) {
            length = 0;
            for (unsigned k = 2; k < need; k++) length = length << 8 | c->hdr[k];
        }
        c->data_frame = (c->hdr[0] & 0x80) && (c->hdr[0] & 0x0f) < 8;
        c->hdr_got = 0;
        c->payload_left = length;
        if (!length && c->data_frame) on_delivery(c);
    }
}

static void on_event(struct conn *c, uint32_t events) {
    switch (c->state) {
    case ST_CONNECTING:
        on_connected(c);
        return;
    case ST_HANDSHAKE:
        if (c->sent < handshake_len) {
            if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flush_out(c, handshake, handshake_len);
        } else if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            on_handshake_data(c);
        }
        return;
    case ST_SENDING:
        if (flush_out(c, request, request_len)) {
            c->state = ST_RECEIVING;
            c->got = 0;
        }
        return;
    case ST_RECEIVING: {
        ssize_t n = recv(c->fd, c->rbuf + c->got, expected_len - c->got, 0);
        if (n > 0) {
            c->got += (size_t)n;
            if (c->got == expected_len) on_reply(c);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            kill_conn(c);
        }
        return;
    }
    case ST_READY: {
        if (opt.broadcast && !setting_up) {
            if (events & EPOLLOUT) { /* the rest of a broadcast trigger */
                if (!flush_out(c, request, request_len)) return;
            }
            if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_broadcast_data(c);
            return;
        }
        /* Nothing is expected on a ready connection: data or a close is an error. */
        char buf[256];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n >= 0 || (errno != EAGAIN && errno != EINTR)) kill_conn(c);
        return;
    }
    case ST_DEAD:
        return;
    }
}

/* Handle the events of one epoll_wait call. */
static void poll_once(int timeout_ms) {
    struct epoll_event events[512];
    int n = epoll_wait(epfd, events, 512, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_wait");
    }
    for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events);
}

static double percentile_us(double q) {
    uint64_t total = 0;
    for (int i = 0; i <= HIST_US; i++) total += hist[i];
    if (total == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total) rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > rank) return i;
    }
    return HIST_US;
}

static void parse_args(int argc, char **argv) {
    static const struct option longs[] = {
        {"mode", required_argument, 0, 'm'},        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},        {"path", required_argument, 0, 'P'},
        {"connections", required_argument, 0, 'c'}, {"size", required_argument, 0, 's'},
        {"duration", required_argument, 0, 'd'},    {"warmup", required_argument, 0, 'w'},
        {"hold", no_argument, 0, 'h'},              {"connect-batch", required_argument, 0, 'b'},
        {"setup-timeout", required_argument, 0, 't'}, {"broadcast", required_argument, 0, 'B'},
        {"interval", required_argument, 0, 'i'},    {"round-timeout", required_argument, 0, 'T'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "m:H:p:c:s:d:w:", longs, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (strcmp(optarg, "length") == 0) opt.mode = MODE_LENGTH;
            else if (strcmp(optarg, "raw") == 0) opt.mode = MODE_RAW;
            else if (strcmp(optarg, "ws") == 0) opt.mode = MODE_WS;
            else if (strcmp(optarg, "idle") == 0) opt.mode = MODE_IDLE;
            else usage();
            break;
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'P': opt.path = optarg; break;
        case 'c': opt.connections = atoi(optarg); break;
        case 's': opt.payload = (size_t)atol(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'h': opt.hold = 1; break;
        case 'b': opt.connect_batch = atoi(optarg); break;
        case 't': opt.setup_timeout = atof(optarg); break;
        case 'B': opt.broadcast = atoi(optarg); break;
        case 'i': opt.interval = atof(optarg); break;
        case 'T': opt.round_timeout = atof(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || opt.connections <= 0 || opt.connect_batch <= 0 || opt.duration <= 0 || opt.warmup < 0)
        usage();
    if (opt.mode == MODE_IDLE) opt.hold = 1;
    if (opt.mode != MODE_IDLE && opt.payload == 0) usage();
    if (opt.broadcast < 0 || (opt.broadcast && (opt.mode != MODE_WS || opt.hold))) usage();
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* --broadcast: R rounds of one message from the first live connection to everyone. */
static int run_broadcast(void) {
    uint64_t *last = calloc((size_t)opt.broadcast, sizeof *last);
    uint64_t *first = calloc((size_t)opt.broadcast, sizeof *first);
    uint64_t errors_before = errors;
    int rounds = 0;
    for (int r = 0; r < opt.broadcast && !stop_flag && alive > 0; r++) {
        struct conn *sender = NULL;
        for (int i = 0; i < opt.connections; i++) {
            conns[i].delivered = 0;
            if (!sender && conns[i].state == ST_READY) sender = &conns[i];
        }
        delivered_count = 0;
        first_rx_ns = last_rx_ns = 0;
        uint64_t t_send = now_ns();
        sender->sent = 0;
        flush_out(sender, request, request_len);
        uint64_t deadline = t_send + (uint64_t)(opt.round_timeout * 1e9);
        while (delivered_count < alive && !stop_flag && now_ns() < deadline) poll_once(10);
        if (delivered_count < alive) break;
        last[rounds] = last_rx_ns - t_send;
        first[rounds] = first_rx_ns - t_send;
        rounds++;
        uint64_t pause_end = now_ns() + (uint64_t)(opt.interval * 1e9);
        while (!stop_flag && now_ns() < pause_end) poll_once(10);
    }
    qsort(last, (size_t)rounds, sizeof *last, compare_u64);
    qsort(first, (size_t)rounds, sizeof *first, compare_u64);
    double median_ms = rounds ? (double)last[rounds / 2] / 1e6 : 0.0;
    double max_ms = rounds ? (double)last[rounds - 1] / 1e6 : 0.0;
    double first_ms = rounds ? (double)first[rounds / 2] / 1e6 : 0.0;
    printf("{\"mode\":\"ws\",\"broadcast_rounds\":%d,\"rounds_completed\":%d,\"connections\":%d,"
           "\"connected\":%d,\"alive\":%d,\"median_ms\":%.3f,\"max_ms\":%.3f,\"first_median_ms\":%.3f,"
           "\"errors\":%llu,\"setup_errors\":%llu}\n",
           opt.broadcast, rounds, opt.connections, ready_count, alive, median_ms, max_ms, first_ms,
           (unsigned long long)(errors - errors_before), (unsigned long long)(errors_before + connect_errors));
    return rounds == opt.broadcast ? 0 : 1;
}

/* Hold the ready connections until stdin reaches EOF or a signal arrives. */
static void hold(void) {
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = epfd, .events = POLLIN}};
    char buf[256];
    while (!stop_flag) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[0].revents) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0 && !(n < 0 && errno == EINTR)) break;
        }
        if (fds[1].revents) poll_once(0);
    }
    printf("{\"event\":\"closed\",\"connections\":%d,\"alive\":%d,\"errors\":%llu}\n", opt.connections, alive,
           (unsigned long long)errors);
}

/* At exit, reset the connections instead of closing them: a normal close leaves one TIME_WAIT
 * entry per connection on the client side for a minute, and a few rounds of 10,000 connections
 * would exhaust the ephemeral ports towards the server. */
static void reset_connections(void) {
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < opt.connections; i++) {
        if (conns[i].state == ST_DEAD) continue;
        setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(conns[i].fd);
        conns[i].state = ST_DEAD;
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal; /* no SA_RESTART: poll/epoll_wait return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    resolve();
    build_messages();

    size_t rbuf_size = opt.mode == MODE_WS ? (expected_len > HANDSHAKE_BUF ? expected_len : HANDSHAKE_BUF)
                                           : expected_len + 1;
    conns = calloc((size_t)opt.connections, sizeof *conns);
    for (int i = 0; i < opt.connections; i++) {
        conns[i].state = ST_DEAD;
        conns[i].rbuf = malloc(rbuf_size);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    atexit(reset_connections);

    uint64_t t_setup = now_ns();
    uint64_t setup_deadline = t_setup + (uint64_t)(opt.setup_timeout * 1e9);
    launch_setups();
    while ((in_setup > 0 || next_conn < opt.connections) && !stop_flag && now_ns() < setup_deadline) poll_once(50);
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state != ST_READY && conns[i].state != ST_DEAD) kill_conn(&conns[i]);
    setting_up = 0;
    double setup_seconds = (double)(now_ns() - t_setup) / 1e9;
    if (ready_count == 0) {
        printf("{\"error\":\"no connection could be set up\",\"mode\":\"%s\",\"connect_errors\":%llu,"
               "\"connect_error\":\"%s\",\"errors\":%llu}\n",
               mode_names[opt.mode], (unsigned long long)connect_errors,
               last_connect_errno ? strerror(last_connect_errno) : "", (unsigned long long)errors);
        return 1;
    }

    if (opt.hold) {
        printf("{\"event\":\"ready\",\"mode\":\"%s\",\"connections\":%d,\"connected\":%d,"
               "\"connect_errors\":%llu,\"errors\":%llu,\"setup_seconds\":%.3f}\n",
               mode_names[opt.mode], opt.connections, ready_count, (unsigned long long)connect_errors,
               (unsigned long long)errors, setup_seconds);
        fflush(stdout);
        hold();
        return 0;
    }

    if (opt.broadcast) return run_broadcast();

    uint64_t errors_before = errors;
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state == ST_READY) send_message(&conns[i]);
    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(opt.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(opt.duration * 1e9);
    uint64_t t0 = start, now = start;
    while (!stop_flag && alive > 0 && now < end) {
        poll_once(10);
        now = now_ns();
        if (!measuring && now >= warm_end) {
            measuring = 1;
            t0 = now;
        }
    }
    double seconds = measuring ? (double)(now - t0) / 1e9 : 0.0;
    printf("{\"mode\":\"%s\",\"connections\":%d,\"connected\":%d,\"payload\":%zu,\"msgs\":%llu,"
           "\"seconds\":%.4f,\"msg_per_s\":%.1f,\"errors\":%llu,\"setup_errors\":%llu,\"p50_us\":%.0f,"
           "\"p99_us\":%.0f,\"total_msgs\":%llu,\"total_seconds\":%.4f}\n",
           mode_names[opt.mode], opt.connections, ready_count, opt.payload, (unsigned long long)msgs, seconds,
           seconds > 0 ? (double)msgs / seconds : 0.0, (unsigned long long)(errors - errors_before),
           (unsigned long long)(errors_before + connect_errors), percentile_us(0.5), percentile_us(0.99),
           (unsigned long long)total_msgs, (double)(now - start) / 1e9);
    return stop_flag ? 1 : 0;
}
