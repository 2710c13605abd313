/*
 * mod_fastcgi C shim: the module structure, the directive table and hook
 * registration. Every hook and directive forwards to a Rust function
 * (src/entry.rs); every decision is made there. The file is named
 * mod_fastcgi.c because httpd takes the module's name from it, and legacy
 * configurations test `<IfModule mod_fastcgi.c>`.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_buckets.h"
#include "apr_optional_hooks.h"
#include "mod_status.h"
#include "fastcgi_shim.h"

APLOG_USE_MODULE(fastcgi);

/* ---- Implemented in Rust (src/entry.rs) ---- */
extern void *fcgi_rs_create_dir_config(apr_pool_t *p, char *dir);
extern void *fcgi_rs_merge_dir_config(apr_pool_t *p, void *base, void *add);
extern void *fcgi_rs_create_server_config(apr_pool_t *p, server_rec *s);
extern int fcgi_rs_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
extern int fcgi_rs_status_hook(request_rec *r, int flags);
extern int fcgi_rs_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
extern void fcgi_rs_child_init(apr_pool_t *p, server_rec *s);
extern int fcgi_rs_fixups(request_rec *r);
extern int fcgi_rs_handler(request_rec *r);
extern int fcgi_rs_check_authn(request_rec *r);
extern int fcgi_rs_check_authz(request_rec *r);
extern int fcgi_rs_check_access(request_rec *r);
extern int fcgi_rs_post_perdir_config(request_rec *r);
extern apr_status_t fcgi_rs_dirwalk_stat(apr_finfo_t *finfo, request_rec *r, apr_int32_t wanted);

/* Directives: one Rust entry per argument shape; `cmd->info` carries the
 * directive id so Rust knows which directive (and which alias) it got. */
extern const char *fcgi_rs_cmd_raw(cmd_parms *cmd, void *mconfig, const char *args);
extern const char *fcgi_rs_cmd_take1(cmd_parms *cmd, void *mconfig, const char *arg);
extern const char *fcgi_rs_cmd_take12(cmd_parms *cmd, void *mconfig, const char *a1, const char *a2);
extern const char *fcgi_rs_cmd_flag(cmd_parms *cmd, void *mconfig, int on);

/* Directive ids; must match `DirectiveId` in src/entry.rs. */
#define D_SERVER          ((void *)1)
#define D_EXTERNAL        ((void *)2)
#define D_CONFIG          ((void *)3)
#define D_IPCDIR          ((void *)4)
#define D_WRAPPER         ((void *)5)
#define D_AUTHENTICATOR   ((void *)6)
#define D_AUTHORIZER      ((void *)7)
#define D_ACCESS_CHECKER  ((void *)8)
#define D_AUTHN_AUTH      ((void *)9)
#define D_AUTHZ_AUTH      ((void *)10)
#define D_ACCESS_AUTH     ((void *)11)
#define D_SPOOLDIR        ((void *)12)
#define D_SPOOLLIMIT      ((void *)13)
#define D_SPOOLTOTAL      ((void *)14)

static const command_rec fastcgi_cmds[] = {
    AP_INIT_RAW_ARGS("AppClass", fcgi_rs_cmd_raw, D_SERVER, RSRC_CONF, NULL),
    AP_INIT_RAW_ARGS("FastCgiServer", fcgi_rs_cmd_raw, D_SERVER, RSRC_CONF, NULL),
    AP_INIT_RAW_ARGS("ExternalAppClass", fcgi_rs_cmd_raw, D_EXTERNAL, RSRC_CONF, NULL),
    AP_INIT_RAW_ARGS("FastCgiExternalServer", fcgi_rs_cmd_raw, D_EXTERNAL, RSRC_CONF, NULL),
    AP_INIT_RAW_ARGS("FCGIConfig", fcgi_rs_cmd_raw, D_CONFIG, RSRC_CONF, NULL),
    AP_INIT_RAW_ARGS("FastCgiConfig", fcgi_rs_cmd_raw, D_CONFIG, RSRC_CONF, NULL),
    AP_INIT_TAKE1("FastCgiIpcDir", fcgi_rs_cmd_take1, D_IPCDIR, RSRC_CONF, NULL),
    AP_INIT_TAKE1("FastCgiSuexec", fcgi_rs_cmd_take1, D_WRAPPER, RSRC_CONF, NULL),
    AP_INIT_TAKE1("FastCgiWrapper", fcgi_rs_cmd_take1, D_WRAPPER, RSRC_CONF, NULL),
    AP_INIT_TAKE1("FastCgiSpoolDir", fcgi_rs_cmd_take1, D_SPOOLDIR, RSRC_CONF,
        "directory for chunked request bodies (default /var/lib/apache2/fastcgi, else /var/tmp)"),
    AP_INIT_TAKE1("FastCgiSpoolLimit", fcgi_rs_cmd_take1, D_SPOOLLIMIT, RSRC_CONF,
        "largest chunked request body spooled, in bytes (K, M, G suffixes; default 128M)"),
    AP_INIT_TAKE1("FastCgiSpoolTotal", fcgi_rs_cmd_take1, D_SPOOLTOTAL, RSRC_CONF,
        "bytes all spooled request bodies may use together (K, M, G suffixes; default 1G)"),
    AP_INIT_TAKE12("FastCgiAuthenticator", fcgi_rs_cmd_take12, D_AUTHENTICATOR, ACCESS_CONF|OR_AUTHCFG,
        "a fastcgi-script path (absolute or relative to ServerRoot) followed by an optional -compat"),
    AP_INIT_FLAG("FastCgiAuthenticatorAuthoritative", fcgi_rs_cmd_flag, D_AUTHN_AUTH, ACCESS_CONF|OR_AUTHCFG,
        "Set to 'off' to allow authentication to be passed along to lower modules upon failure"),
    AP_INIT_TAKE12("FastCgiAuthorizer", fcgi_rs_cmd_take12, D_AUTHORIZER, ACCESS_CONF|OR_AUTHCFG,
        "a fastcgi-script path (absolute or relative to ServerRoot) followed by an optional -compat"),
    AP_INIT_FLAG("FastCgiAuthorizerAuthoritative", fcgi_rs_cmd_flag, D_AUTHZ_AUTH, ACCESS_CONF|OR_AUTHCFG,
        "Set to 'off' to allow authorization to be passed along to lower modules upon failure"),
    AP_INIT_TAKE12("FastCgiAccessChecker", fcgi_rs_cmd_take12, D_ACCESS_CHECKER, ACCESS_CONF|OR_AUTHCFG,
        "a fastcgi-script path (absolute or relative to ServerRoot) followed by an optional -compat"),
    AP_INIT_FLAG("FastCgiAccessCheckerAuthoritative", fcgi_rs_cmd_flag, D_ACCESS_AUTH, ACCESS_CONF|OR_AUTHCFG,
        "Set to 'off' to allow access control to be passed along to lower modules upon failure"),
    { NULL }
};

/* mod_status's optional hook: registered on every configuration pass (as
 * mod_ssl does), since httpd unloads and reloads this DSO between passes.
 * Whether mod_status is loaded or not makes no difference here. */
static int fastcgi_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    APR_OPTIONAL_HOOK(ap, status_hook, fcgi_rs_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
    return fcgi_rs_pre_config(pconf, plog, ptemp);
}

static void fastcgi_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(fastcgi_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(fcgi_rs_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(fcgi_rs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(fcgi_rs_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(fcgi_rs_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* The directory walk goes on through the missing directories of an
     * external server's path, so the <Directory> sections of that path
     * apply (issue 10, finding 9). */
    ap_hook_dirwalk_stat(fcgi_rs_dirwalk_stat, NULL, NULL, APR_HOOK_MIDDLE);
    /* The 2.4 way, ahead of mod_auth_basic whatever the LoadModule order
     * (legacy AU-02). An authorizer decides on the URI it is shown, so an
     * internal redirect or a subrequest (mod_rewrite, a Location: from an
     * application, ErrorDocument, DirectoryIndex) must ask it again even
     * when its per-directory configuration is the one of the request it
     * came from, which httpd would take as already checked:
     * fcgi_rs_post_perdir_config gives such a request a configuration of
     * its own when it names a FastCGI check (issue 10, finding 12). That
     * covers every case AP_AUTH_INTERNAL_PER_URI covers (and more), so the
     * hooks stay per-configuration and httpd's reuse of decisions stays on
     * for requests without FastCGI checks. */
    ap_hook_post_perdir_config(fcgi_rs_post_perdir_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_authn(fcgi_rs_check_authn, NULL, NULL, APR_HOOK_FIRST, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_authz(fcgi_rs_check_authz, NULL, NULL, APR_HOOK_FIRST, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_access(fcgi_rs_check_access, NULL, NULL, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
}

module AP_MODULE_DECLARE_DATA fastcgi_module = {
    STANDARD20_MODULE_STUFF,
    fcgi_rs_create_dir_config,
    fcgi_rs_merge_dir_config,
    fcgi_rs_create_server_config,
    NULL,
    fastcgi_cmds,
    fastcgi_register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_NONE
#endif
};

/* ---- Helpers Rust calls ---- */

void fcgi_shim_log_request(const request_rec *r, int level, apr_status_t status, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, status, r, "%s", msg);
}

void fcgi_shim_log_server(const server_rec *s, int level, apr_status_t status, const char *msg)
{
    ap_log_error(APLOG_MARK, level, status, s, "%s", msg);
}

void fcgi_shim_log_pool(apr_pool_t *p, int level, apr_status_t status, const char *msg)
{
    ap_log_perror(APLOG_MARK, level, status, p, "%s", msg);
}

apr_bucket *fcgi_shim_brigade_first(apr_bucket_brigade *bb)
{
    return APR_BRIGADE_EMPTY(bb) ? NULL : APR_BRIGADE_FIRST(bb);
}

apr_bucket *fcgi_shim_bucket_next(apr_bucket_brigade *bb, apr_bucket *b)
{
    apr_bucket *n = APR_BUCKET_NEXT(b);
    return n == APR_BRIGADE_SENTINEL(bb) ? NULL : n;
}

int fcgi_shim_bucket_is_eos(const apr_bucket *b) { return APR_BUCKET_IS_EOS(b); }
int fcgi_shim_bucket_is_flush(const apr_bucket *b) { return APR_BUCKET_IS_FLUSH(b); }
int fcgi_shim_bucket_is_metadata(const apr_bucket *b) { return APR_BUCKET_IS_METADATA(b); }
apr_size_t fcgi_shim_bucket_length(const apr_bucket *b) { return b->length; }

apr_status_t fcgi_shim_bucket_read(apr_bucket *b, const char **data, apr_size_t *len, int block)
{
    return apr_bucket_read(b, data, len, block ? APR_BLOCK_READ : APR_NONBLOCK_READ);
}

void fcgi_shim_bucket_delete(apr_bucket *b) { apr_bucket_delete(b); }
void fcgi_shim_brigade_insert_tail(apr_bucket_brigade *bb, apr_bucket *b) { APR_BRIGADE_INSERT_TAIL(bb, b); }
apr_bucket_alloc_t *fcgi_shim_request_bucket_alloc(request_rec *r) { return r->connection->bucket_alloc; }

void *fcgi_shim_get_dir_config(const ap_conf_vector_t *cv) { return ap_get_module_config(cv, &fastcgi_module); }
void *fcgi_shim_get_server_config(const server_rec *s) { return ap_get_module_config(s->module_config, &fastcgi_module); }
int fcgi_shim_module_index(void) { return fastcgi_module.module_index; }
