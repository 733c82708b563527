/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "macro.h"

struct http_server {
        struct MHD_Daemon *mhd;
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *kick; /* runs MHD once after a suspended request was resumed */
        http_handler_t handler;
        void *userdata;
        uint16_t port;
};

struct http_request {
        struct http_server *server;
        struct MHD_Connection *conn;
        char *body;
        size_t body_len;
        bool too_large;
        bool suspended;
        bool responded;
        void (*abandon)(void *userdata);
        void *abandon_userdata;
        /* a response made while suspended, queued when MHD calls the handler again */
        bool pending;
        unsigned pending_status;
        char *pending_body;
        size_t pending_len;
        const char *pending_type;
        const char *const *pending_headers;
};

static int queue(struct http_request *req, unsigned status, struct MHD_Response *resp,
        const char *content_type, const char *const *extra);
static void add_headers(struct MHD_Response *resp, const char *content_type, const char *const *extra);

static char *memdup_or_null(const char *p, size_t n)
{
        char *c = malloc(n + 1);
        if (c) {
                memcpy(c, p, n);
                c[n] = 0;
        }
        return c;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct http_server *srv = userdata;
        MHD_run(srv->mhd);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct http_server *srv = userdata;
        MHD_run(srv->mhd);
        return 0;
}

static int on_kick(sd_event_source *s, void *userdata)
{
        struct http_server *srv = userdata;
        MHD_run(srv->mhd);
        return 0;
}

/* Before the loop sleeps: MHD says when it next needs to run (timeouts). */
static int on_prepare(sd_event_source *s, void *userdata)
{
        struct http_server *srv = userdata;
        MHD_UNSIGNED_LONG_LONG ms;
        if (MHD_get_timeout(srv->mhd, &ms) == MHD_YES) {
                sd_event_source_set_time_relative(srv->timer, ms * USEC_PER_MSEC);
                sd_event_source_set_enabled(srv->timer, SD_EVENT_ONESHOT);
        } else
                sd_event_source_set_enabled(srv->timer, SD_EVENT_OFF);
        return 0;
}

static void client_address(struct MHD_Connection *conn, char *buf, size_t size)
{
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        buf[0] = 0;
        if (!ci || !ci->client_addr)
                return;
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)size);
        else if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a))
                        inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)size);
                else
                        inet_ntop(AF_INET6, a, buf, (socklen_t)size);
        }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
        const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
        struct http_server *srv = cls;
        struct http_request *req = *con_cls;
        if (!req) {
                req = calloc(1, sizeof *req);
                if (!req)
                        return MHD_NO;
                req->server = srv;
                req->conn = conn;
                *con_cls = req;
                return MHD_YES;
        }
        if (req->pending) {
                req->pending = false;
                struct MHD_Response *resp = MHD_create_response_from_buffer(
                        req->pending_len, req->pending_body, MHD_RESPMEM_MUST_FREE);
                if (!resp)
                        free(req->pending_body);
                req->pending_body = NULL;
                return queue(req, req->pending_status, resp, req->pending_type, req->pending_headers) == 0
                               ? MHD_YES
                               : MHD_NO;
        }
        if (req->suspended || req->responded)
                return MHD_YES;
        if (*upload_size) {
                if (!req->too_large && req->body_len + *upload_size <= HTTP_MAX_BODY) {
                        char *b = realloc(req->body, req->body_len + *upload_size + 1);
                        if (!b)
                                return MHD_NO;
                        memcpy(b + req->body_len, upload_data, *upload_size);
                        req->body = b;
                        req->body_len += *upload_size;
                        req->body[req->body_len] = 0;
                } else
                        req->too_large = true; /* keep reading, answer 413 at the end */
                *upload_size = 0;
                return MHD_YES;
        }
        char client[INET6_ADDRSTRLEN] = "";
        client_address(conn, client, sizeof client);
        struct http_request_info info = {
                .method = method,
                .path = url,
                .client = client,
                .body = req->body ? req->body : "",
                .body_len = req->body_len,
                .body_too_large = req->too_large,
        };
        srv->handler(srv->userdata, req, &info);
        return (req->responded || req->suspended) ? MHD_YES : MHD_NO;
}

static void on_completed(
        void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        struct http_request *req = *con_cls;
        if (!req)
                return;
        if (req->abandon)
                req->abandon(req->abandon_userdata);
        free(req->body);
        free(req->pending_body);
        free(req);
        *con_cls = NULL;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
/* MHD hands us its own format strings. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char buf[256];
        vsnprintf(buf, sizeof buf, fmt, ap);
        size_t n = strlen(buf);
        while (n && buf[n - 1] == '\n')
                buf[--n] = 0;
        log_debug("http: %s", buf);
}
#pragma GCC diagnostic pop

static int bind_listen(const struct sockaddr *sa, socklen_t len, int v6only)
{
        _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        /* A restart must not wait for the last connections' TIME_WAIT. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
                return -errno;
        if (sa->sa_family == AF_INET6 &&
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0)
                return -errno;
        if (bind(fd, sa, len) < 0 || listen(fd, 64) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* The listening socket is made here, not by MHD, so that a refusal is reported with its own
 * errno (EACCES under a confining profile, EADDRINUSE, EADDRNOTAVAIL) rather than one guess.
 * No bind address: IPv6 and IPv4 on one socket, or IPv4 alone where IPv6 is off. */
static int listen_socket(const char *bind_address, uint16_t port)
{
        struct sockaddr_in6 sa6 = {
                .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
        struct sockaddr_in sa4 = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
        if (bind_address && *bind_address) {
                if (inet_pton(AF_INET, bind_address, &sa4.sin_addr) == 1)
                        return bind_listen((const struct sockaddr *)&sa4, sizeof sa4, 0);
                if (inet_pton(AF_INET6, bind_address, &sa6.sin6_addr) == 1)
                        return bind_listen((const struct sockaddr *)&sa6, sizeof sa6, 1);
                return -EINVAL;
        }
        int fd = bind_listen((const struct sockaddr *)&sa6, sizeof sa6, 0);
        /* A host (or container) without IPv6: IPv4 alone. */
        if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
                fd = bind_listen((const struct sockaddr *)&sa4, sizeof sa4, 0);
        return fd;
}

int http_server_new(struct http_server **ret, sd_event *event, const char *bind_address, uint16_t port,
        http_handler_t handler, void *userdata)
{
        struct http_server *srv = calloc(1, sizeof *srv);
        if (!srv)
                return -ENOMEM;
        srv->handler = handler;
        srv->userdata = userdata;

        int fd = listen_socket(bind_address, port);
        if (fd < 0) {
                free(srv);
                return fd;
        }
        /* MHD takes the socket and closes it when it stops. */
        srv->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, port, NULL,
                NULL, on_access, srv, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                (unsigned)256, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)128,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)15, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_END);
        if (!srv->mhd) {
                close(fd);
                free(srv);
                return -ENOMEM; /* the socket is ours and listening: what is left is memory */
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        const union MHD_DaemonInfo *pi = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
        srv->port = pi ? pi->port : port;
        int r = sd_event_add_io(event, &srv->io, di->epoll_fd, EPOLLIN, on_io, srv);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &srv->timer, CLOCK_MONOTONIC, 0, 1, on_timer, srv);
        if (r >= 0)
                r = sd_event_source_set_prepare(srv->io, on_prepare);
        if (r >= 0)
                r = sd_event_add_defer(event, &srv->kick, on_kick, srv);
        if (r >= 0)
                r = sd_event_source_set_enabled(srv->kick, SD_EVENT_OFF);
        if (r < 0) {
                http_server_free(srv);
                return r;
        }
        sd_event_source_set_enabled(srv->timer, SD_EVENT_OFF);
        *ret = srv;
        return 0;
}

struct http_server *http_server_free(struct http_server *s)
{
        if (!s)
                return NULL;
        sd_event_source_unref(s->io);
        sd_event_source_unref(s->timer);
        sd_event_source_unref(s->kick);
        if (s->mhd)
                MHD_stop_daemon(s->mhd);
        free(s);
        return NULL;
}

uint16_t http_server_port(const struct http_server *s)
{
        return s->port;
}

const char *http_query(struct http_request *req, const char *key)
{
        return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct http_request *req, const char *name)
{
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static int queue(struct http_request *req, unsigned status, struct MHD_Response *resp,
        const char *content_type, const char *const *extra)
{
        if (!resp)
                return -ENOMEM;
        add_headers(resp, content_type, extra);
        enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
        MHD_destroy_response(resp);
        req->responded = true;
        return r == MHD_YES ? 0 : -EIO;
}

int http_respond(struct http_request *req, unsigned status, const char *content_type, char *body, size_t len,
        bool owned, const char *const *extra_headers)
{
        if (req->suspended) {
                /* Outside the handler: keep it until MHD calls the handler again after resume. */
                req->pending_body = owned ? body : memdup_or_null(body, len);
                req->pending_len = len;
                req->pending_status = status;
                req->pending_type = content_type;
                req->pending_headers = extra_headers;
                req->pending = true;
                req->suspended = false;
                MHD_resume_connection(req->conn);
                /* In external-epoll mode nothing wakes MHD for a resume: run it once. */
                sd_event_source_set_enabled(req->server->kick, SD_EVENT_ONESHOT);
                return 0;
        }
        struct MHD_Response *resp = MHD_create_response_from_buffer(
                len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp && owned)
                free(body);
        return queue(req, status, resp, content_type, extra_headers);
}

int http_respond_file(struct http_request *req, int fd, uint64_t size, const char *content_type)
{
        struct MHD_Response *resp = MHD_create_response_from_fd64(size, fd);
        if (!resp)
                close(fd);
        static const char *const cache[] = {"Cache-Control", "no-cache", NULL};
        return queue(req, 200, resp, content_type, cache);
}

struct http_response {
        struct MHD_Response *resp;
        char *body; /* owned by resp; kept to answer a suspended request */
        size_t len;
        const char *content_type;
};

static void add_headers(struct MHD_Response *resp, const char *content_type, const char *const *extra)
{
        if (content_type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        for (const char *const *h = extra; h && h[0]; h += 2)
                MHD_add_response_header(resp, h[0], h[1]);
}

struct http_response *http_response_new(
        const char *content_type, char *body, size_t len, const char *const *extra_headers)
{
        struct http_response *r = calloc(1, sizeof *r);
        if (r)
                r->resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!r || !r->resp) {
                free(r);
                free(body);
                return NULL;
        }
        r->body = body;
        r->len = len;
        r->content_type = content_type;
        add_headers(r->resp, content_type, extra_headers);
        return r;
}

struct http_response *http_response_unref(struct http_response *r)
{
        if (r) {
                MHD_destroy_response(r->resp); /* freed when the last connection is done with it */
                free(r);
        }
        return NULL;
}

int http_respond_shared(struct http_request *req, unsigned status, struct http_response *r)
{
        if (req->suspended) /* answered later: needs bytes of its own */
                return http_respond(req, status, r->content_type, r->body, r->len, false, NULL);
        enum MHD_Result rc = MHD_queue_response(req->conn, status, r->resp);
        req->responded = true;
        return rc == MHD_YES ? 0 : -EIO;
}

void http_suspend(struct http_request *req)
{
        req->suspended = true;
        MHD_suspend_connection(req->conn);
}

void http_set_abandon(struct http_request *req, void (*cb)(void *userdata), void *userdata)
{
        req->abandon = cb;
        req->abandon_userdata = userdata;
}
