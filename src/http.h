/* SPDX-License-Identifier: MIT */
#pragma once

/* libmicrohttpd inside the sd-event loop (external epoll, no threads), with request bodies
 * collected under a size limit and connections that can wait for a BLE session. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define HTTP_MAX_BODY 16384

struct http_server;
struct http_request;

struct http_request_info {
        const char *method;
        const char *path;   /* without the query string */
        const char *client; /* numeric address */
        const char *body;   /* NUL-terminated, may be empty */
        size_t body_len;
        bool body_too_large;
};

/* Returns 0 when a response was queued or the request was suspended. */
typedef int (*http_handler_t)(
        void *userdata, struct http_request *req, const struct http_request_info *info);

int http_server_new(struct http_server **ret, sd_event *event, const char *bind_address, uint16_t port,
        http_handler_t handler, void *userdata);
struct http_server *http_server_free(struct http_server *s);
uint16_t http_server_port(const struct http_server *s);

const char *http_query(struct http_request *req, const char *key);
const char *http_header(struct http_request *req, const char *name);

/* Responses take ownership of body (malloc'd) when owned is true. */
int http_respond(struct http_request *req, unsigned status, const char *content_type, char *body, size_t len,
        bool owned, const char *const *extra_headers);
int http_respond_file(struct http_request *req, int fd, uint64_t size, const char *content_type);

/* A response built once and sent to many requests: MHD counts the connections still sending
 * it, so dropping it here while some are never frees their bytes under them. */
struct http_response;
/* Takes ownership of body (malloc'd). extra_headers are copied. NULL when out of memory. */
struct http_response *http_response_new(
        const char *content_type, char *body, size_t len, const char *const *extra_headers);
struct http_response *http_response_unref(struct http_response *r);
int http_respond_shared(struct http_request *req, unsigned status, struct http_response *r);

/* Keeps the connection waiting; a later http_respond() (from the same loop) resumes it.
 * extra_headers of such a response must outlive the request (static arrays). */
void http_suspend(struct http_request *req);
/* Set when the client is gone while the request waited: do not respond. */
void http_set_abandon(struct http_request *req, void (*cb)(void *userdata), void *userdata);
