/* turnload: a paced TURN load generator over UDP, the same for every server measured.
 *
 * Two modes, each bounded in time, each printing JSON lines:
 *
 *   turnload relay SERVER_IP PORT USER REALM KEY_HEX CLIENTS RATE DURATION_S LENGTH
 *     CLIENTS allocations, each with one channel bound to a peer socket of this
 *     program; then ChannelData messages at RATE per second in all for DURATION_S.
 *     The peer socket echoes every datagram back to the relayed address it came
 *     from, so each message is relayed twice (client->peer, peer->client).
 *     A message not back within LATE_S of being sent counts as lost.
 *
 *   turnload alloc SERVER_IP PORT USER REALM KEY_HEX COUNT RATE HOLD
 *     COUNT new clients started at RATE per second, each doing what a real client
 *     does: an unauthenticated Allocate, the 401 with its nonce, the signed
 *     Allocate. No retransmission: a lost request or answer is a failure, and so
 *     is an allocation not made within LATE_S of the client's start. With
 *     HOLD = 1 it prints the "allocated" line and waits for a line on stdin (the
 *     caller measures the server's memory meanwhile) before releasing.
 *
 * Either mode ends by releasing every allocation (Refresh with LIFETIME 0, with
 * retransmissions), so one run leaves nothing on the server. KEY_HEX is the
 * long-term key MD5(USER:REALM:PASSWORD) in hex (RFC 8489 §9.2.2). Links with
 * libcrypto for HMAC-SHA1 (MESSAGE-INTEGRITY).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 20000
#define MAX_NONCE 255
#define BATCH 64
#define CHUNK 8
#define PEER_INDEX 0xFFFFFFFFu
#define CHANNEL 0x4000
#define RETRANSMIT_S 0.3
#define MAX_TRIES 5
/* Later than this is as good as lost: the server did not keep up, it only buffered. */
#define LATE_S 0.2

enum { ALLOCATE = 0x0003, REFRESH = 0x0004, CHANNEL_BIND = 0x0009 };
enum {
    ST_IDLE, ST_CHALLENGE, ST_AUTH, ST_ALLOCATED, ST_BINDING, ST_READY,
    ST_RELEASING, ST_RELEASED, ST_FAILED
};

typedef struct {
    int fd;
    uint8_t state, tries;
    uint16_t method;
    double sent_at, started_at;
    uint8_t tid[12];
    uint8_t nonce[MAX_NONCE];
    uint8_t nonce_len;
} client_t;

static client_t *clients;
static int nclients, epfd, peer_fd = -1;
static struct sockaddr_in server, peer_addr;
static const char *user, *realm;
static uint8_t key[16];
static uint64_t tid_seq;
static int retransmit = 1;   /* 0 while measuring allocations: a loss is a failure */
static int in_state[ST_FAILED + 1];
static uint64_t refused;
static int on_time;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void set_state(client_t *c, int state) {
    in_state[c->state]--;
    in_state[state]++;
    c->state = (uint8_t)state;
}

static size_t put_attr(uint8_t *m, size_t off, uint16_t type, const void *value, uint16_t len) {
    m[off] = type >> 8; m[off + 1] = type & 0xFF;
    m[off + 2] = len >> 8; m[off + 3] = len & 0xFF;
    memcpy(m + off + 4, value, len);
    size_t padded = (len + 3u) & ~3u;
    memset(m + off + 4 + len, 0, padded - len);
    return off + 4 + padded;
}

static void set_length(uint8_t *m, size_t total) {
    m[2] = (uint8_t)((total - 20) >> 8);
    m[3] = (uint8_t)((total - 20) & 0xFF);
}

/* Builds the client's next request (a fresh transaction id unless `again`). */
static size_t build(client_t *c, int index, uint16_t method, int sign, int again, uint8_t *m) {
    memset(m, 0, 20);
    m[0] = method >> 8; m[1] = method & 0xFF;
    m[4] = 0x21; m[5] = 0x12; m[6] = 0xA4; m[7] = 0x42;
    if (!again) {
        tid_seq++;
        c->tid[0] = 'T'; c->tid[1] = 'L';
        memcpy(c->tid + 2, &index, 4);
        memcpy(c->tid + 6, &tid_seq, 6);
    }
    memcpy(m + 8, c->tid, 12);
    size_t off = 20;
    if (method == ALLOCATE) {
        uint8_t udp[4] = {17, 0, 0, 0};
        off = put_attr(m, off, 0x0019, udp, 4);          /* REQUESTED-TRANSPORT */
    } else if (method == REFRESH) {
        uint8_t zero[4] = {0, 0, 0, 0};
        off = put_attr(m, off, 0x000D, zero, 4);         /* LIFETIME 0 */
    } else {
        uint8_t number[4] = {CHANNEL >> 8, CHANNEL & 0xFF, 0, 0};
        off = put_attr(m, off, 0x000C, number, 4);       /* CHANNEL-NUMBER */
        uint8_t xor_peer[8] = {0, 0x01};
        uint16_t port = ntohs(peer_addr.sin_port) ^ 0x2112;
        uint32_t ip = ntohl(peer_addr.sin_addr.s_addr) ^ 0x2112A442u;
        xor_peer[2] = port >> 8; xor_peer[3] = port & 0xFF;
        for (int i = 0; i < 4; i++) xor_peer[4 + i] = (uint8_t)(ip >> (24 - 8 * i));
        off = put_attr(m, off, 0x0012, xor_peer, 8);     /* XOR-PEER-ADDRESS */
    }
    if (sign) {
        off = put_attr(m, off, 0x0006, user, (uint16_t)strlen(user));
        off = put_attr(m, off, 0x0014, realm, (uint16_t)strlen(realm));
        off = put_attr(m, off, 0x0015, c->nonce, c->nonce_len);
        set_length(m, off + 24);
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        HMAC(EVP_sha1(), key, sizeof key, m, off, mac, &mac_len);
        off = put_attr(m, off, 0x0008, mac, 20);         /* MESSAGE-INTEGRITY */
    }
    set_length(m, off);
    return off;
}

static void transmit(client_t *c, int index, uint16_t method, int sign, int again) {
    uint8_t m[600];
    size_t n = build(c, index, method, sign, again, m);
    c->method = method;
    c->sent_at = now_s();
    if (!again) c->tries = 0;
    c->tries++;
    if (send(c->fd, m, n, 0) < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED)
        perror("turnload: send");
}

static int open_client(int index) {
    client_t *c = &clients[index];
    c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&server, sizeof server) != 0) {
        perror("turnload: client socket");
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)index};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    set_state(c, ST_CHALLENGE);
    transmit(c, index, ALLOCATE, 0, 0);
    c->started_at = c->sent_at;
    return 0;
}

/* A STUN answer on client `index`: move its state on. */
static void on_answer(int index, const uint8_t *m, ssize_t n, int bind_channel) {
    client_t *c = &clients[index];
    if (n < 20 || (m[0] & 0xC0) || memcmp(m + 8, c->tid, 12) != 0) return;
    uint16_t type = (uint16_t)(m[0] << 8 | m[1]);
    int success = (type & 0x0110) == 0x0100, error = (type & 0x0110) == 0x0110;
    if ((type & 0x3EEF) != c->method || (!success && !error)) return;
    int code = 0;
    const uint8_t *nonce = NULL;
    int nonce_len = 0;
    for (ssize_t off = 20; off + 4 <= n;) {
        int at = m[off] << 8 | m[off + 1], len = m[off + 2] << 8 | m[off + 3];
        if (off + 4 + len > n) break;
        if (at == 0x0009 && len >= 4) code = (m[off + 6] & 7) * 100 + m[off + 7];
        if (at == 0x0015 && len <= MAX_NONCE) { nonce = m + off + 4; nonce_len = len; }
        off += 4 + ((len + 3) & ~3);
    }
    if (error && (code == 401 || code == 438) && nonce &&
        (c->state == ST_CHALLENGE || code == 438) && c->tries < MAX_TRIES) {
        memcpy(c->nonce, nonce, (size_t)nonce_len);
        c->nonce_len = (uint8_t)nonce_len;
        if (c->state == ST_CHALLENGE) set_state(c, ST_AUTH);
        transmit(c, index, c->method, 1, 0);
        return;
    }
    if (c->state == ST_AUTH) {
        if (!success) { set_state(c, ST_FAILED); refused++; return; }
        set_state(c, ST_ALLOCATED);
        on_time += now_s() - c->started_at <= LATE_S;
        if (bind_channel) { set_state(c, ST_BINDING); transmit(c, index, CHANNEL_BIND, 1, 0); }
    } else if (c->state == ST_BINDING) {
        set_state(c, success ? ST_READY : ST_FAILED);
        refused += !success;
    } else if (c->state == ST_RELEASING) {
        set_state(c, ST_RELEASED);  /* 437 counts too: nothing is left on the server */
    }
}

/* One receive batch: BATCH buffers, with room for each sender's address when `from`. */
typedef struct {
    uint8_t bufs[BATCH][2048];
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
} batch_t;

static int receive_batch(int fd, batch_t *b, struct sockaddr_in *from) {
    for (int i = 0; i < BATCH; i++) {
        b->iovs[i].iov_base = b->bufs[i];
        b->iovs[i].iov_len = sizeof b->bufs[i];
        memset(&b->msgs[i].msg_hdr, 0, sizeof b->msgs[i].msg_hdr);
        b->msgs[i].msg_hdr.msg_iov = &b->iovs[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
        if (from) {
            b->msgs[i].msg_hdr.msg_name = &from[i];
            b->msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        }
    }
    return recvmmsg(fd, b->msgs, BATCH, MSG_DONTWAIT, NULL);
}

static void drain_client(int index, int bind_channel, uint8_t *seen, uint64_t *received,
                         uint64_t total) {
    double t = now_s();
    static batch_t batch;
    uint8_t (*bufs)[2048] = batch.bufs;
    struct mmsghdr *msgs = batch.msgs;
    for (int round = 0; round < 16; round++) {
        int got = receive_batch(clients[index].fd, &batch, NULL);
        if (got <= 0) return;
        for (int i = 0; i < got; i++) {
            const uint8_t *m = bufs[i];
            ssize_t n = msgs[i].msg_len;
            if (n >= 24 && m[0] == (CHANNEL >> 8) && memcmp(m + 4, "TLDG", 4) == 0) {
                uint64_t seq;
                double sent_at;
                memcpy(&seq, m + 8, 8);
                memcpy(&sent_at, m + 16, 8);
                if (seq < total && !(seen[seq] & 2) && t - sent_at <= LATE_S) {
                    seen[seq] |= 2;
                    (*received)++;
                }
            } else {
                on_answer(index, m, n, bind_channel);
            }
        }
        if (got < BATCH) return;
    }
}

/* The peer: every datagram goes straight back where it came from (the relayed address). */
static void echo_peer(uint8_t *seen, uint64_t *to_peer, uint64_t total) {
    static batch_t batch;
    static struct sockaddr_in from[BATCH];
    uint8_t (*bufs)[2048] = batch.bufs;
    struct mmsghdr *msgs = batch.msgs;
    struct iovec *iovs = batch.iovs;
    for (int round = 0; round < 16; round++) {
        int got = receive_batch(peer_fd, &batch, from);
        if (got <= 0) return;
        for (int i = 0; i < got; i++) {
            iovs[i].iov_len = msgs[i].msg_len;
            if (msgs[i].msg_len >= 12 && memcmp(bufs[i], "TLDG", 4) == 0) {
                uint64_t seq;
                memcpy(&seq, bufs[i] + 4, 8);
                if (seq < total && !(seen[seq] & 1)) { seen[seq] |= 1; (*to_peer)++; }
            }
        }
        sendmmsg(peer_fd, msgs, (unsigned)got, 0);
        if (got < BATCH) return;
    }
}

/* One pass of the event loop: answers, echoes, and (every 50 ms) retransmissions. */
static void pump(int timeout_ms, int bind_channel, uint8_t *seen, uint64_t *to_peer,
                 uint64_t *received, uint64_t total) {
    struct epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t index = events[i].data.u32;
        if (index == PEER_INDEX) echo_peer(seen, to_peer, total);
        else drain_client((int)index, bind_channel, seen, received, total);
    }
    static double last_scan;
    double t = now_s();
    if (t - last_scan < 0.05) return;
    last_scan = t;
    if (!retransmit) return;  /* measuring: an answer counts whenever it comes in time */
    for (int i = 0; i < nclients; i++) {
        client_t *c = &clients[i];
        int waiting = c->state == ST_CHALLENGE || c->state == ST_AUTH ||
                      c->state == ST_BINDING || c->state == ST_RELEASING;
        if (!waiting || t - c->sent_at < RETRANSMIT_S) continue;
        if (c->tries < MAX_TRIES)
            transmit(c, i, c->method, c->state != ST_CHALLENGE, 1);
        else  /* given up: a release that never got an answer is left to expire */
            set_state(c, c->state == ST_RELEASING ? ST_RELEASED : ST_FAILED);
    }
}

/* Refresh(0) for every client that may hold an allocation, at most `rate` per second. */
static int release_all(double rate) {
    /* A client still waiting for its 401 holds nothing: drop it now, or a retransmission
     * would make an allocation after the release pass went by. */
    for (int i = 0; i < nclients; i++)
        if (clients[i].state == ST_CHALLENGE) set_state(&clients[i], ST_FAILED);
    retransmit = 1;
    double start = now_s(), stop = start + 10.0;
    int next = 0, issued = 0;
    uint64_t dummy = 0;
    while (now_s() < stop) {
        int due = (int)((now_s() - start) * rate) + 1;
        for (; next < nclients && issued < due; next++) {
            client_t *c = &clients[next];
            /* A signed Allocate may have made an allocation whose answer was lost. */
            int held = c->state == ST_AUTH || c->state == ST_ALLOCATED ||
                       c->state == ST_BINDING || c->state == ST_READY ||
                       (c->state == ST_FAILED && c->nonce_len);
            if (!held) continue;
            set_state(c, ST_RELEASING);
            transmit(c, next, REFRESH, 1, 0);
            issued++;
        }
        if (next >= nclients && in_state[ST_RELEASING] == 0) break;
        pump(1, 0, NULL, &dummy, &dummy, 0);
    }
    return in_state[ST_RELEASED];
}

static int setup(char **argv, int count) {
    const char *ip = argv[2], *port = argv[3], *hex = argv[6];
    user = argv[4];
    realm = argv[5];
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, ip, &server.sin_addr) != 1) {
        fprintf(stderr, "turnload: bad IPv4 address %s\n", ip);
        return -1;
    }
    if (strlen(hex) != 32) {
        fprintf(stderr, "turnload: KEY_HEX must be 32 hex digits\n");
        return -1;
    }
    for (int i = 0; i < 16; i++) sscanf(hex + 2 * i, "%2hhx", &key[i]);
    if (count < 1 || count > MAX_CLIENTS) {
        fprintf(stderr, "turnload: between 1 and %d clients\n", MAX_CLIENTS);
        return -1;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)count + 64 > rl.rlim_cur) {
        fprintf(stderr, "turnload: %d clients need more open files than %lu\n", count,
                (unsigned long)rl.rlim_cur);
        return -1;
    }
    clients = calloc((size_t)count, sizeof *clients);
    nclients = count;
    for (int i = 0; i < count; i++) clients[i].fd = -1;
    in_state[ST_IDLE] = count;
    epfd = epoll_create1(0);
    return 0;
}

static int relay_mode(char **argv) {
    int count = atoi(argv[7]), length = atoi(argv[10]);
    double rate = atof(argv[8]), duration = atof(argv[9]);
    if (rate <= 0 || duration <= 0 || duration > 600 || length < 20 || length > 1200) {
        fprintf(stderr, "turnload: bad arguments\n");
        return 2;
    }
    if (setup(argv, count) != 0) return 2;
    peer_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int size = 8 << 20;
    setsockopt(peer_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(peer_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    peer_addr.sin_family = AF_INET;
    peer_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof peer_addr;
    if (bind(peer_fd, (struct sockaddr *)&peer_addr, sizeof peer_addr) != 0 ||
        getsockname(peer_fd, (struct sockaddr *)&peer_addr, &alen) != 0) {
        perror("turnload: peer socket");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = PEER_INDEX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, peer_fd, &ev);
    uint64_t total = (uint64_t)(rate * duration), to_peer = 0, received = 0, dummy = 0;
    uint8_t *seen = calloc(total + 1, 1);
    double begin = now_s();
    for (int i = 0; i < count; i++) {
        if (open_client(i) != 0) return 1;
        setsockopt(clients[i].fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    while (in_state[ST_READY] + in_state[ST_FAILED] < count && now_s() < begin + 10.0)
        pump(1, 1, NULL, &dummy, &dummy, 0);
    int ready = in_state[ST_READY];
    double setup_s = now_s() - begin;
    if (ready < count) {
        printf("{\"error\": \"only %d of %d clients got a channel\", \"ready\": %d}\n", ready,
               count, ready);
        release_all(5000);
        return 1;
    }
    /* Consecutive messages go to one client in a chunk: one sendmmsg per chunk. */
    static uint8_t packets[CHUNK][1300];
    struct mmsghdr msgs[CHUNK];
    struct iovec iovs[CHUNK];
    memset(packets, 0, sizeof packets);
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < CHUNK; i++) {
        uint8_t *p = packets[i];
        p[0] = CHANNEL >> 8; p[1] = CHANNEL & 0xFF;
        p[2] = (uint8_t)(length >> 8); p[3] = (uint8_t)(length & 0xFF);
        memcpy(p + 4, "TLDG", 4);
        iovs[i].iov_base = p;
        iovs[i].iov_len = 4 + (size_t)length;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t sent = 0, send_errors = 0;
    double cpu0 = cpu_s(), start = now_s(), end = start + duration, stop = end + LATE_S;
    for (;;) {
        double t = now_s();
        if (t >= stop || (sent == total && received == sent)) break;
        uint64_t due = t >= end ? total : (uint64_t)((t - start) * rate);
        if (due > total) due = total;
        while (sent < due) {
            uint64_t n = CHUNK - sent % CHUNK;
            if (n > due - sent) n = due - sent;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t seq = sent + i;
                memcpy(packets[i] + 8, &seq, 8);
                memcpy(packets[i] + 16, &t, 8);
            }
            int fd = clients[(sent / CHUNK) % (uint64_t)count].fd;
            int done = sendmmsg(fd, msgs, (unsigned)n, 0);
            if (done < 0) {
                if (errno == EAGAIN || errno == ENOBUFS) break;
                send_errors += n;
                done = (int)n;
            }
            sent += (uint64_t)done;
        }
        pump(1, 1, seen, &to_peer, &received, total);
    }
    double cpu = cpu_s() - cpu0, wall = now_s() - start;
    int released = release_all(5000);
    double loss = sent ? 100.0 * (double)(sent - received) / (double)sent : 100.0;
    printf("{\"rate\": %.0f, \"clients\": %d, \"sent\": %llu, \"to_peer\": %llu, "
           "\"received\": %llu, \"loss_pct\": %.3f, \"send_errors\": %llu, "
           "\"setup_s\": %.3f, \"loadgen_cpu_share\": %.3f, \"released\": %d}\n",
           rate, count, (unsigned long long)sent, (unsigned long long)to_peer,
           (unsigned long long)received, loss, (unsigned long long)send_errors, setup_s,
           wall > 0 ? cpu / wall : 0.0, released);
    free(seen);
    return 0;
}

static int alloc_mode(char **argv) {
    int count = atoi(argv[7]), hold = atoi(argv[9]);
    double rate = atof(argv[8]);
    if (rate <= 0 || count / rate > 600) {
        fprintf(stderr, "turnload: bad arguments\n");
        return 2;
    }
    if (setup(argv, count) != 0) return 2;
    retransmit = 0;
    uint64_t dummy = 0;
    int started = 0;
    double cpu0 = cpu_s(), start = now_s(), stop = start + count / rate + LATE_S;
    while (now_s() < stop) {
        int due = (int)((now_s() - start) * rate);
        if (due > count) due = count;
        while (started < due)
            if (open_client(started++) != 0) return 1;
        pump(1, 0, NULL, &dummy, &dummy, 0);
        if (started == count && in_state[ST_ALLOCATED] + in_state[ST_FAILED] == count) break;
    }
    int allocated = in_state[ST_ALLOCATED];
    double elapsed = now_s() - start, cpu = cpu_s() - cpu0;
    double loss = 100.0 * (double)(count - on_time) / (double)count;
    printf("{\"phase\": \"allocated\", \"rate\": %.0f, \"count\": %d, \"allocated\": %d, "
           "\"on_time\": %d, \"refused\": %llu, \"loss_pct\": %.3f, \"elapsed_s\": %.3f, "
           "\"loadgen_cpu_share\": %.3f}\n",
           rate, count, allocated, on_time, (unsigned long long)refused, loss, elapsed,
           elapsed > 0 ? cpu / elapsed : 0.0);
    fflush(stdout);
    if (hold) {
        struct pollfd in = {.fd = 0, .events = POLLIN};
        if (poll(&in, 1, 120000) > 0) {
            char line[64];
            if (read(0, line, sizeof line) < 0) perror("turnload: stdin");
        }
    }
    int released = release_all(rate < 5000 ? rate : 5000);
    printf("{\"phase\": \"released\", \"released\": %d}\n", released);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 11 && strcmp(argv[1], "relay") == 0) return relay_mode(argv);
    if (argc == 10 && strcmp(argv[1], "alloc") == 0) return alloc_mode(argv);
    fprintf(stderr,
            "usage: %s relay SERVER_IP PORT USER REALM KEY_HEX CLIENTS RATE DURATION_S LENGTH\n"
            "       %s alloc SERVER_IP PORT USER REALM KEY_HEX COUNT RATE HOLD\n",
            argv[0], argv[0]);
    return 2;
}
