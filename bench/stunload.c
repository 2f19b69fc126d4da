/* stunload: a paced STUN Binding load generator, the same for every server measured.
 *
 * Sends Binding requests at a fixed rate for a fixed time from several UDP sockets,
 * counts the success responses that match a request it sent, and prints one JSON
 * line. Bounded: it stops after the duration plus a one-second grace period.
 *
 * usage: stunload SERVER_IP PORT RATE_PER_S DURATION_S [SOCKETS]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKETS 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void build_request(uint8_t *out, uint64_t seq) {
    memset(out, 0, 20);
    out[1] = 0x01;                      /* Binding request */
    out[4] = 0x21; out[5] = 0x12; out[6] = 0xA4; out[7] = 0x42;  /* magic cookie */
    out[8] = 'L'; out[9] = 'D'; out[10] = 'G'; out[11] = 'N';    /* our tag */
    for (int i = 0; i < 8; i++) out[12 + i] = (uint8_t)(seq >> (8 * i));
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s SERVER_IP PORT RATE_PER_S DURATION_S [SOCKETS]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in server = {0};
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
        fprintf(stderr, "stunload: bad IPv4 address %s\n", argv[1]);
        return 2;
    }
    double rate = atof(argv[3]), duration = atof(argv[4]);
    int nsock = argc > 5 ? atoi(argv[5]) : 8;
    if (nsock < 1 || nsock > MAX_SOCKETS || rate <= 0 || duration <= 0 || duration > 600) {
        fprintf(stderr, "stunload: bad arguments\n");
        return 2;
    }
    int socks[MAX_SOCKETS];
    struct pollfd pfds[MAX_SOCKETS];
    for (int i = 0; i < nsock; i++) {
        socks[i] = socket(AF_INET, SOCK_DGRAM, 0);
        int size = 8 << 20;
        setsockopt(socks[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        setsockopt(socks[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        fcntl(socks[i], F_SETFL, O_NONBLOCK);
        if (connect(socks[i], (struct sockaddr *)&server, sizeof server) != 0) {
            perror("stunload: connect");
            return 1;
        }
        pfds[i].fd = socks[i];
        pfds[i].events = POLLIN;
    }
    uint64_t total = (uint64_t)(rate * duration);
    uint8_t *seen = calloc(total + 1, 1);
    uint64_t sent = 0, received = 0, send_errors = 0;
    uint8_t packet[20], buf[2048];
    double start = now_s(), end = start + duration, stop = end + 1.0;
    for (;;) {
        double t = now_s();
        if (t >= stop || (sent == total && received == sent)) break;
        uint64_t due = t >= end ? total : (uint64_t)((t - start) * rate);
        if (due > total) due = total;
        while (sent < due) {
            build_request(packet, sent);
            if (send(socks[sent % nsock], packet, 20, 0) != 20) {
                if (errno == EAGAIN || errno == ENOBUFS) break;
                send_errors++;
            }
            sent++;
        }
        if (poll(pfds, nsock, 1) <= 0) continue;
        for (int i = 0; i < nsock; i++) {
            if (!(pfds[i].revents & POLLIN)) continue;
            for (int k = 0; k < 256; k++) {
                ssize_t n = recv(socks[i], buf, sizeof buf, 0);
                if (n < 0) break;
                if (n < 20 || buf[0] != 0x01 || buf[1] != 0x01) continue;
                if (memcmp(buf + 8, "LDGN", 4) != 0) continue;
                uint64_t seq = 0;
                for (int j = 0; j < 8; j++) seq |= (uint64_t)buf[12 + j] << (8 * j);
                if (seq < sent && !seen[seq]) {
                    seen[seq] = 1;
                    received++;
                }
            }
        }
    }
    double loss = sent ? 100.0 * (double)(sent - received) / (double)sent : 100.0;
    printf("{\"rate\": %.0f, \"sent\": %llu, \"received\": %llu, \"loss_pct\": %.3f, "
           "\"send_errors\": %llu}\n",
           rate, (unsigned long long)sent, (unsigned long long)received, loss,
           (unsigned long long)send_errors);
    free(seen);
    return 0;
}
