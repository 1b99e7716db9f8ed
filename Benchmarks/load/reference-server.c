/*
 * reference-server: the floor the bridge is compared against.
 *
 * A minimal libmodbus Modbus TCP server in the shape of libmodbus's own
 * bandwidth-server-many-up example: one select() loop over the listening
 * socket and every client, one modbus_t whose socket is switched with
 * modbus_set_socket() for each client, modbus_receive() then modbus_reply()
 * on a modbus_mapping_new(0, 0, 65536, 65536) mapping filled with non-zero
 * values. It does nothing else: no unit routing, no block checks, no
 * staleness, no statistics. Whatever the bridge costs above this is the
 * bridge's own work.
 *
 * Usage: reference-server [HOST] PORT       (HOST defaults to 127.0.0.1)
 * SIGTERM or SIGINT stops it.
 *
 * Build: gcc -O2 -o reference-server reference-server.c $(pkg-config --cflags --libs libmodbus)
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

static volatile sig_atomic_t stopping = 0;

static void on_signal(int signo)
{
    (void)signo;
    stopping = 1;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port;
    if (argc == 2) {
        port = atoi(argv[1]);
    } else if (argc == 3) {
        host = argv[1];
        port = atoi(argv[2]);
    } else {
        fprintf(stderr, "usage: %s [HOST] PORT\n", argv[0]);
        return 2;
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "reference-server: bad port %s\n", argv[argc - 1]);
        return 2;
    }

    modbus_t *ctx = modbus_new_tcp(host, port);
    if (ctx == NULL) {
        fprintf(stderr, "reference-server: modbus_new_tcp: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_mapping_t *mapping = modbus_mapping_new(0, 0, 65536, 65536);
    if (mapping == NULL) {
        fprintf(stderr, "reference-server: modbus_mapping_new: %s\n", modbus_strerror(errno));
        modbus_free(ctx);
        return 1;
    }
    /* Non-zero values, different in the two tables, so a reader can tell them apart. */
    for (int i = 0; i < 65536; i++) {
        mapping->tab_registers[i] = (uint16_t)(0x1000 + i * 7);
        mapping->tab_input_registers[i] = (uint16_t)(0x2000 + i * 11);
    }

    int server_socket = modbus_tcp_listen(ctx, 256);
    if (server_socket == -1) {
        fprintf(stderr, "reference-server: cannot listen on %s:%d: %s\n", host, port, modbus_strerror(errno));
        modbus_mapping_free(mapping);
        modbus_free(ctx);
        return 1;
    }

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal; /* no SA_RESTART: select() returns EINTR */
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    fprintf(stderr, "reference-server: listening on %s:%d\n", host, port);

    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    fd_set refset, rdset;
    FD_ZERO(&refset);
    FD_SET(server_socket, &refset);
    int fdmax = server_socket;

    while (!stopping) {
        rdset = refset;
        if (select(fdmax + 1, &rdset, NULL, NULL, NULL) == -1) {
            if (errno == EINTR)
                continue;
            perror("reference-server: select");
            break;
        }
        for (int fd = 0; fd <= fdmax; fd++) {
            if (!FD_ISSET(fd, &rdset))
                continue;
            if (fd == server_socket) {
                struct sockaddr_storage peer;
                socklen_t length = sizeof peer;
                int client = accept(server_socket, (struct sockaddr *)&peer, &length);
                if (client == -1) {
                    perror("reference-server: accept");
                    continue;
                }
                if (client >= FD_SETSIZE) {
                    fprintf(stderr, "reference-server: descriptor %d over FD_SETSIZE, closed\n", client);
                    close(client);
                    continue;
                }
                /* As the bridge does for its clients. */
                int one = 1;
                setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                FD_SET(client, &refset);
                if (client > fdmax)
                    fdmax = client;
            } else {
                modbus_set_socket(ctx, fd);
                int rc = modbus_receive(ctx, query);
                if (rc > 0) {
                    modbus_reply(ctx, query, rc, mapping);
                } else if (rc == -1) {
                    close(fd);
                    FD_CLR(fd, &refset);
                    while (fdmax > server_socket && !FD_ISSET(fdmax, &refset))
                        fdmax--;
                }
            }
        }
    }

    for (int fd = 0; fd <= fdmax; fd++) {
        if (FD_ISSET(fd, &refset))
            close(fd);
    }
    modbus_set_socket(ctx, -1);
    modbus_mapping_free(mapping);
    modbus_free(ctx);
    fprintf(stderr, "reference-server: stopped\n");
    return 0;
}
