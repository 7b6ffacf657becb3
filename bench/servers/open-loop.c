/*
 * Open-loop HTTP/1.1 load generator for the per-pod cost benchmark (bench/proxy-overhead.ts), in C.
 *
 * Why it exists: the Node open-loop client (bench/servers/open-loop.ts) pauses for its own garbage collection and
 * event-loop work, and those pauses landed in the very tail we measure: it showed a direct (no proxy) p99 of 5-17 ms
 * on loopback, where this client shows under 1 ms. A proxy's added p99 of a millisecond is invisible behind that.
 * This client allocates nothing per request, never pauses, and sleeps in epoll until the next request is due.
 *
 * Method (wrk2's coordinated-omission correction): request i is due at start + i / rate, whatever happened to the
 * requests before it. It leaves on the first idle one of N keep-alive connections (no pipelining); when every
 * connection is busy it waits for one, and its latency still counts from its due time, so a stalled server cannot hide
 * its stall by delaying the requests behind it. Latency ends when the whole response (headers + Content-Length body)
 * has arrived. Responses without Content-Length (chunked, close-delimited) are counted as errors: the benchmark's
 * upstream always sends one.
 *
 * Usage: open-loop HOST PORT PATH RATE DURATION_S CONNECTIONS
 * Prints one JSON line: requests (completed), rps (achieved: completed / seconds from start to the last response),
 * offeredRps, p50Ms, p90Ms, p99Ms, p999Ms, maxMs (exact quantiles of every latency, nearest rank), errors (requests
 * that failed or never completed within 10 s of the last due time), non2xx, late (requests sent more than 1 ms after
 * they were due: a client-bound or connection-starved run). Exit status 1 on bad arguments or a failed connect.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_BYTES 16384
#define LATE_NS 1000000LL          /* a send this far past its due time is late */
#define DRAIN_NS 10000000000LL     /* after the last due time, wait this long for responses */

typedef struct {
  int fd;
  long req;          /* index of the request in flight, -1 when idle */
  size_t got;        /* bytes of the response buffered so far */
  char buf[BUF_BYTES];
} conn_t;

static struct sockaddr_in addr;
static char request[1024];
static size_t request_len;
static long long *latency_ns; /* per request, from due time to response end; -1 until it completes */

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/*
 * (Re)opens connection c: a blocking connect on loopback (immediate), then non-blocking with Nagle off, watched by
 * epoll. A server that refuses a connection is a failed run: exit 1 rather than report figures without it.
 */
static void open_conn(int ep, conn_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    fprintf(stderr, "open-loop: cannot connect: %s\n", strerror(errno));
    exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  c->fd = fd;
  c->req = -1;
  c->got = 0;
}

/*
 * Whether buf[0..len) holds a whole response; sets *status. Returns 1 when complete, 0 when more bytes are needed,
 * -1 when it cannot be parsed (no status line, no Content-Length, or larger than the buffer).
 */
static int response_complete(const char *buf, size_t len, int *status) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (end == NULL) return len >= BUF_BYTES ? -1 : 0;
  if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
  *status = atoi(buf + 9);
  size_t header_len = (size_t)(end - buf) + 4;
  long body = -1;
  for (const char *line = memchr(buf, '\n', header_len); line != NULL && line < end; line = memchr(line, '\n', (size_t)(end - line))) {
    line++;
    if (strncasecmp(line, "content-length:", 15) == 0) body = atol(line + 15);
  }
  if (body < 0 || header_len + (size_t)body > BUF_BYTES) return -1;
  return len >= header_len + (size_t)body ? 1 : 0;
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank quantile q (0..1) of n sorted values, in ms. */
static double quantile_ms(const long long *sorted, long n, double q) {
  if (n == 0) return 0;
  long rank = (long)(q * n + 0.999999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1] / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s HOST PORT PATH RATE DURATION_S CONNECTIONS\n", argv[0]);
    return 1;
  }
  const double rate = atof(argv[4]), duration_s = atof(argv[5]);
  const int nconn = atoi(argv[6]);
  const long total = (long)(rate * duration_s + 0.5) > 0 ? (long)(rate * duration_s + 0.5) : 1;
  if (rate <= 0 || nconn <= 0) {
    fprintf(stderr, "open-loop: RATE and CONNECTIONS must be positive\n");
    return 1;
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "open-loop: HOST must be an IPv4 address, got %s\n", argv[1]);
    return 1;
  }
  request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", argv[3], argv[1], argv[2]);
  /* Sleep to the microsecond: the default 50 µs timer slack would blur due times for nothing. */
  prctl(PR_SET_TIMERSLACK, 1UL);

  latency_ns = malloc(sizeof *latency_ns * (size_t)total);
  conn_t *conns = calloc((size_t)nconn, sizeof *conns);
  conn_t **idle = malloc(sizeof *idle * (size_t)nconn); /* stack of idle connections */
  int nidle = 0;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < nconn; i++) {
    open_conn(ep, &conns[i]);
    idle[nidle++] = &conns[i];
  }

  const long long interval_ns = (long long)(1e9 / rate);
  const long long start = now_ns() + 1000000; /* first request due 1 ms from now */
  long sent = 0, done = 0, errors = 0, non2xx = 0, late = 0;
  long long last_response = start;
  struct epoll_event events[256];

  while (done + errors < total) {
    long long now = now_ns();
    /* Send every request that is due, as long as a connection is idle; the rest wait and their latency grows. */
    while (sent < total && nidle > 0 && start + sent * interval_ns <= now) {
      conn_t *c = idle[--nidle];
      long long due = start + sent * interval_ns;
      if (now - due > LATE_NS) late++;
      c->req = sent;
      latency_ns[sent++] = -1;
      /* One small request on a connection with nothing in flight: the socket buffer takes it whole. */
      if (write(c->fd, request, request_len) != (ssize_t)request_len) {
        errors++;
        close(c->fd);
        open_conn(ep, c);
        idle[nidle++] = c;
      }
    }
    if (now > start + (total - 1) * interval_ns + DRAIN_NS) {
      errors = total - done; /* failed, or never sent or answered */
      break;
    }
    /* Sleep until the next due time (or a response); when every connection is busy, until a response. */
    long long wait_ns = (sent < total && nidle > 0) ? start + sent * interval_ns - now : 100000000LL;
    if (wait_ns < 0) wait_ns = 0;
    struct timespec timeout = {.tv_sec = wait_ns / 1000000000LL, .tv_nsec = wait_ns % 1000000000LL};
    int n = epoll_pwait2(ep, events, 256, &timeout, NULL);
    if (n < 0 && errno == ENOSYS) n = epoll_wait(ep, events, 256, (int)(wait_ns / 1000000)); /* kernels before 5.11 */
    now = now_ns();
    for (int i = 0; i < n; i++) {
      conn_t *c = events[i].data.ptr;
      ssize_t r = read(c->fd, c->buf + c->got, BUF_BYTES - c->got);
      int status = 0, complete = -1;
      if (r > 0) {
        c->got += (size_t)r;
        complete = c->req >= 0 ? response_complete(c->buf, c->got, &status) : -1;
      } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        continue;
      }
      if (complete == 0) continue;
      if (complete == 1) {
        latency_ns[c->req] = now - (start + c->req * interval_ns);
        if (status < 200 || status > 299) non2xx++;
        done++;
        last_response = now;
        c->req = -1;
        c->got = 0;
        idle[nidle++] = c;
        continue;
      }
      /* Closed, reset or unparsable: the request in flight failed; reconnect so the connection count stays N (an
         idle connection the server closed is still on the idle stack, with its new socket). */
      const int was_busy = c->req >= 0;
      if (was_busy) errors++;
      close(c->fd); /* also removes it from epoll */
      open_conn(ep, c);
      if (was_busy) idle[nidle++] = c;
    }
  }

  /* Completed latencies only, sorted, for exact quantiles. */
  long m = 0;
  for (long i = 0; i < sent; i++)
    if (latency_ns[i] >= 0) latency_ns[m++] = latency_ns[i];
  qsort(latency_ns, (size_t)m, sizeof *latency_ns, cmp_ll);
  const double seconds = (last_response - start) / 1e9;
  printf("{\"requests\":%ld,\"rps\":%.1f,\"offeredRps\":%g,\"p50Ms\":%.3f,\"p90Ms\":%.3f,\"p99Ms\":%.3f,\"p999Ms\":%.3f,"
         "\"maxMs\":%.3f,\"errors\":%ld,\"non2xx\":%ld,\"late\":%ld}\n",
         done, seconds > 0 ? done / seconds : 0.0, rate, quantile_ms(latency_ns, m, 0.5), quantile_ms(latency_ns, m, 0.9),
         quantile_ms(latency_ns, m, 0.99), quantile_ms(latency_ns, m, 0.999), m ? latency_ns[m - 1] / 1e6 : 0.0, errors,
         non2xx, late);
  return 0;
}
