// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One request to the Kubernetes API server with libcurl's easy interface:
 * TLS with the kubeconfig's CA and client certificate (files or in-memory
 * PEM), a bearer token re-read from its file on every request (service
 * account tokens are rotated under us), and a whole-request deadline. Also
 * the streaming variant the watcher uses. See kube.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include "kube.h"

#ifndef KSHIFT_VERSION
#define KSHIFT_VERSION "0.1"
#endif

/* A list of 500 large objects is a few MB; anything near this is a bug. */
#define MAX_BODY (256u << 20)
/* What we keep of a failed watch's body: enough for a Status object. */
#define MAX_ERROR_BODY (64u << 10)
#define CONNECT_MS     10000L

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_ret;

static void curl_init(void)
{
	curl_init_ret = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct xfer {
	CURL *curl;
	ks_kube_data_fn *on_data; /* NULL: everything goes to resp */
	bool (*stop)(void *arg);
	void *arg;
	struct ks_kube_resp *resp;
	int cb_err; /* why a callback ended the transfer */
	bool checked, streaming;
};

static int append(struct ks_kube_resp *r, const char *p, size_t len)
{
	char *b = realloc(r->body, r->len + len + 1);

	if (!b)
		return -ENOMEM;
	memcpy(b + r->len, p, len);
	r->body = b;
	r->len += len;
	b[r->len] = '\0';
	return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb;
	long status = 0;

	if (x->on_data && !x->checked) {
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
		x->streaming = status == 200;
		x->checked = true;
	}
	if (x->streaming) {
		x->cb_err = x->on_data(x->arg, p, len);
		/* anything but len makes curl end with CURLE_WRITE_ERROR */
		return x->cb_err ? 0 : len;
	}
	if (x->on_data && x->resp->len + len > MAX_ERROR_BODY)
		return len;
	if (x->resp->len + len > MAX_BODY) {
		x->cb_err = -EFBIG;
		return 0;
	}
	if (append(x->resp, p, len)) {
		x->cb_err = -ENOMEM;
		return 0;
	}
	return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = arg;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (x->stop && x->stop(x->arg)) {
		x->cb_err = -ECANCELED;
		return 1;
	}
	return 0;
}

/* The bearer token: the file's current content, else the static one. */
static int read_token(const struct ks_kube_conf *conf, char **token, char *err, size_t errlen)
{
	char buf[16384];
	size_t n;
	FILE *f;

	*token = NULL;
	if (!conf->token_file) {
		if (conf->token && !(*token = strdup(conf->token)))
			return -ENOMEM;
		return 0;
	}
	f = fopen(conf->token_file, "r");
	if (!f) {
		int ret = -errno;

		snprintf(err, errlen, "token file %s: %s", conf->token_file, strerror(-ret));
		return ret;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (!n) {
		snprintf(err, errlen, "token file %s: empty", conf->token_file);
		return -EINVAL;
	}
	*token = strdup(buf);
	return *token ? 0 : -ENOMEM;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, f);
	n = vasprintf(&s, f, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static void set_blob(CURL *c, CURLoption opt, const char *pem)
{
	struct curl_blob b = { .data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_COPY };

	curl_easy_setopt(c, opt, &b);
}

static int perform(const struct ks_kube_conf *conf, const char *method, const char *path,
		   const char *content_type, const char *body, long timeout_ms, struct xfer *x,
		   char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "", *url = NULL, *auth = NULL, *token, *ctype = NULL;
	char *noproxy = NULL;
	const char *np;
	struct curl_slist *hdrs = NULL, *h;
	CURLcode rc;
	int ret;

	ret = read_token(conf, &token, err, errlen);
	if (ret)
		return ret;
	x->curl = curl_easy_init();
	url = fmt("%s%s", conf->server, path);
	if (token)
		auth = fmt("Authorization: Bearer %s", token);
	if (body)
		ctype = fmt("Content-Type: %s", content_type ? content_type : "application/json");
	/* A proxy from the environment is used, as kubectl does, but never
	 * for loopback (as Go's ProxyFromEnvironment): kubectl proxy, tests. */
	np = getenv("NO_PROXY") ?: getenv("no_proxy");
	noproxy = np && !strcmp(np, "*")
			  ? strdup(np)
			  : fmt("%s%slocalhost,127.0.0.1,::1", np ?: "", np && *np ? "," : "");
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	h = hdrs; /* NULL once an append fails */
	if (h && auth)
		h = curl_slist_append(hdrs, auth);
	if (h && ctype)
		h = curl_slist_append(hdrs, ctype);
	if (!x->curl || !url || (token && !auth) || (body && !ctype) || !h || !noproxy) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s %s: %s", method, path, strerror(ENOMEM));
		goto out;
	}

	curl_easy_setopt(x->curl, CURLOPT_URL, url);
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(x->curl, CURLOPT_USERAGENT, "kshift/" KSHIFT_VERSION);
	curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout_ms < CONNECT_MS ? timeout_ms : CONNECT_MS);
	/* a watch can be silent for minutes: let TCP find a dead peer */
	curl_easy_setopt(x->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(x->curl, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(x->curl, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(x->curl, CURLOPT_NOPROXY, noproxy);
	curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	if (x->stop) {
		curl_easy_setopt(x->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(x->curl, CURLOPT_XFERINFODATA, x);
		curl_easy_setopt(x->curl, CURLOPT_NOPROGRESS, 0L);
	}
	if (strcmp(method, "GET"))
		curl_easy_setopt(x->curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	if (conf->ca_data)
		set_blob(x->curl, CURLOPT_CAINFO_BLOB, conf->ca_data);
	else if (conf->ca_file)
		curl_easy_setopt(x->curl, CURLOPT_CAINFO, conf->ca_file);
	if (conf->insecure) {
		curl_easy_setopt(x->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(x->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (conf->cert_data)
		set_blob(x->curl, CURLOPT_SSLCERT_BLOB, conf->cert_data);
	else if (conf->cert_file)
		curl_easy_setopt(x->curl, CURLOPT_SSLCERT, conf->cert_file);
	if (conf->key_data)
		set_blob(x->curl, CURLOPT_SSLKEY_BLOB, conf->key_data);
	else if (conf->key_file)
		curl_easy_setopt(x->curl, CURLOPT_SSLKEY, conf->key_file);

	rc = curl_easy_perform(x->curl);
	/* also when the transfer failed: a watch that broke after its 200 */
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->resp->status);
	/* the query (resourceVersion, timeoutSeconds, continue) is left out of
	 * messages so the same failure reads the same every time */
	url[strlen(conf->server) + strcspn(path, "?")] = '\0';
	if (rc == CURLE_OK) {
		ret = 0;
	} else if (x->cb_err) {
		ret = x->cb_err;
		if (ret != -ECANCELED)
			snprintf(err, errlen, "%s %s: %s", method, url, strerror(-ret));
	} else {
		ret = curl_errno(rc);
		snprintf(err, errlen, "%s %s: %s", method, url,
			 cerr[0] ? cerr : curl_easy_strerror(rc));
	}
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(x->curl);
	x->curl = NULL;
	free(url);
	free(ctype);
	free(noproxy);
	if (auth) {
		/* the token should not outlive its use in freed heap */
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	return ret;
}

/* perform, once more after a 401 when the token comes from a file that may
 * have been rotated since we read it. */
static int perform_retry(const struct ks_kube_conf *conf, const char *method, const char *path,
			 const char *content_type, const char *body, long timeout_ms,
			 struct xfer *x, char *err, size_t errlen)
{
	int ret, tries = conf->token_file ? 2 : 1;

	if (pthread_once(&curl_once, curl_init) || curl_init_ret) {
		snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(curl_init_ret));
		return -EIO;
	}
	memset(x->resp, 0, sizeof(*x->resp));
	while (tries--) {
		x->checked = x->streaming = false;
		x->cb_err = 0;
		ret = perform(conf, method, path, content_type, body, timeout_ms, x, err, errlen);
		if (ret || x->resp->status != 401 || !tries)
			break;
		ks_kube_resp_free(x->resp);
	}
	if (!ret && !x->resp->body && append(x->resp, "", 0))
		ret = -ENOMEM;
	if (ret) {
		long status = x->resp->status;

		ks_kube_resp_free(x->resp);
		x->resp->status = status;
	}
	return ret;
}

int ks_kube_request(const struct ks_kube_conf *conf, const char *method, const char *path,
		    const char *content_type, const char *body, long timeout_ms,
		    struct ks_kube_resp *resp, char *err, size_t errlen)
{
	struct xfer x = { .resp = resp };

	return perform_retry(conf, method, path, content_type, body, timeout_ms, &x, err, errlen);
}

int ks_kube_stream(const struct ks_kube_conf *conf, const char *path, long timeout_ms,
		   ks_kube_data_fn *on_data, bool (*stop)(void *arg), void *arg,
		   struct ks_kube_resp *resp, char *err, size_t errlen)
{
	struct xfer x = { .on_data = on_data, .stop = stop, .arg = arg, .resp = resp };

	return perform_retry(conf, "GET", path, NULL, NULL, timeout_ms, &x, err, errlen);
}

void ks_kube_resp_free(struct ks_kube_resp *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

const char *ks_kube_status_message(const struct ks_kube_resp *resp)
{
	/* per thread, so the daemon and the watcher threads do not share it */
	static __thread char msg[512];
	struct json_object *o, *m;

	if (!resp->body || !resp->len) {
		snprintf(msg, sizeof(msg), "HTTP %ld with no body", resp->status);
		return msg;
	}
	o = json_tokener_parse(resp->body);
	if (o && json_object_object_get_ex(o, "message", &m) &&
	    json_object_is_type(m, json_type_string)) {
		snprintf(msg, sizeof(msg), "%s", json_object_get_string(m));
		json_object_put(o);
		return msg;
	}
	json_object_put(o);
	return resp->body;
}
