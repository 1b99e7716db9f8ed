#ifndef SEC1000_CSOCKETCALLS_H
#define SEC1000_CSOCKETCALLS_H

/* Linux calls that create descriptors close-on-exec atomically. glibc declares them only under
   _GNU_SOURCE, which Swift's Glibc module is built without; both exist since glibc 2.10.
   No system header is included, so nothing here shadows what Glibc exports. */
#ifdef __linux__
struct sockaddr;
int accept4(int fd, struct sockaddr *address, unsigned int *length, int flags);
int pipe2(int fds[2], int flags);
#endif

#endif
