/*
 * The C side of mod_fastcgi that Rust calls: thin wrappers for httpd/APR
 * macros and variadic functions, which bindgen cannot bind directly.
 * No decisions are made here.
 */
#ifndef FASTCGI_SHIM_H
#define FASTCGI_SHIM_H

#include "httpd.h"
#include "http_config.h"
#include "apr_buckets.h"

/* Logging with this module's index (so lines carry the [fastcgi:...] tag).
 * The message is passed as data, never as a format string. */
void fcgi_shim_log_request(const request_rec *r, int level, apr_status_t status, const char *msg);
void fcgi_shim_log_server(const server_rec *s, int level, apr_status_t status, const char *msg);
void fcgi_shim_log_pool(apr_pool_t *p, int level, apr_status_t status, const char *msg);

/* Bucket and brigade macros. */
apr_bucket *fcgi_shim_brigade_first(apr_bucket_brigade *bb);   /* NULL when empty */
apr_bucket *fcgi_shim_bucket_next(apr_bucket_brigade *bb, apr_bucket *b); /* NULL at end */
int fcgi_shim_bucket_is_eos(const apr_bucket *b);
int fcgi_shim_bucket_is_flush(const apr_bucket *b);
int fcgi_shim_bucket_is_metadata(const apr_bucket *b);
apr_size_t fcgi_shim_bucket_length(const apr_bucket *b);
apr_status_t fcgi_shim_bucket_read(apr_bucket *b, const char **data, apr_size_t *len, int block);
void fcgi_shim_bucket_delete(apr_bucket *b);
void fcgi_shim_brigade_insert_tail(apr_bucket_brigade *bb, apr_bucket *b);
apr_bucket_alloc_t *fcgi_shim_request_bucket_alloc(request_rec *r);

/* Per-module config access (ap_get_module_config is a macro). */
void *fcgi_shim_get_dir_config(const ap_conf_vector_t *cv);
void *fcgi_shim_get_server_config(const server_rec *s);

/* The module's own index (for diagnostics). */
int fcgi_shim_module_index(void);

#endif
