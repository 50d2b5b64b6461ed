#include "tls/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void ca_openssl_error(char *err, size_t n, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	ERR_error_string_n(e, buf, sizeof buf);
	snprintf(err, n, "%s: %s", what, e ? buf : "unknown error");
	ERR_clear_error();
}

bool ca_ensure_dir(const char *dir, char *err, size_t n)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
		snprintf(err, n, "state dir path too long: %s", dir);
		return false;
	}
	for (char *p = path + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST) {
				snprintf(err, n, "cannot create state dir %s: %s", path, strerror(errno));
				return false;
			}
			*p = saved;
			if (!saved)
				break;
		}
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, n, "state dir %s is not a directory", dir);
		return false;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, n, "state dir %s is not writable: %s", dir, strerror(errno));
		return false;
	}
	return true;
}

bool ca_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (!ext)
		return false;
	bool ok = X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

X509 *ca_self_signed(EVP_PKEY *key, const char *cn, long days, const ca_ext_t *exts)
{
	X509 *cert = X509_new();
	if (!cert)
		return NULL;
	unsigned char serial[16];
	RAND_bytes(serial, sizeof serial);
	serial[0] &= 0x7f;
	serial[0] |= 0x40;
	BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	bool ok = bn && name && X509_set_version(cert, 2) && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
		  /* Backdated a day for clocks that are a little behind. */
		  X509_gmtime_adj(X509_getm_notBefore(cert), -86400) &&
		  X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400) &&
		  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"dlpgate", -1, -1, 0) &&
		  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) &&
		  X509_set_subject_name(cert, name) && X509_set_issuer_name(cert, name) && X509_set_pubkey(cert, key);
	if (ok) {
		X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
		for (const ca_ext_t *e = exts; ok && e && e->nid; e++)
			ok = ca_add_ext(cert, &ctx, e->nid, e->value);
		ok = ok && X509_sign(cert, key, EVP_sha256()) > 0;
	}
	BN_free(bn);
	X509_NAME_free(name);
	if (!ok) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

static X509 *make_ca_cert(EVP_PKEY *key)
{
	char host[256] = "localhost", cn[320];
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	snprintf(cn, sizeof cn, "dlpgate CA %.200s %04d-%02d-%02d", host, tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday);
	cn[64] = '\0'; /* CN upper bound */
	static const ca_ext_t exts[] = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
					{NID_key_usage, "critical,keyCertSign,cRLSign"},
					{NID_subject_key_identifier, "hash"},
					{NID_authority_key_identifier, "keyid:always"},
					{0, NULL}};
	return ca_self_signed(key, cn, 3650, exts);
}

bool ca_write_pem(const char *path, int mode, X509 *cert, EVP_PKEY *key, char *err, size_t n)
{
	/* O_EXCL: we never replace a CA that exists, and the key file is born
	 * with its final mode, never briefly readable. */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, n, "cannot create %s: %s", path, strerror(errno));
		return false;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		snprintf(err, n, "cannot write %s: %s", path, strerror(errno));
		return false;
	}
	bool ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 : PEM_write_X509(f, cert) == 1;
	ok = ok && fflush(f) == 0 && fsync(fd) == 0;
	if (fclose(f) != 0)
		ok = false;
	if (!ok) {
		snprintf(err, n, "cannot write %s", path);
		unlink(path);
	}
	return ok;
}

static bool generate(ca_t *ca, const char *cert_path, const char *key_path, char *err, size_t n)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	if (!key) {
		ca_openssl_error(err, n, "cannot generate the CA key");
		return false;
	}
	X509 *cert = make_ca_cert(key);
	if (!cert) {
		EVP_PKEY_free(key);
		ca_openssl_error(err, n, "cannot make the CA certificate");
		return false;
	}
	if (!ca_write_pem(key_path, 0600, NULL, key, err, n) || !ca_write_pem(cert_path, 0644, cert, NULL, err, n)) {
		unlink(key_path);
		X509_free(cert);
		EVP_PKEY_free(key);
		return false;
	}
	ca->cert = cert;
	ca->key = key;
	ca->generated = true;
	return true;
}

static X509 *read_cert(const char *path, char *err, size_t n)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, n, "cannot read CA certificate %s: %s", path, strerror(errno));
		return NULL;
	}
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!cert)
		ca_openssl_error(err, n, path);
	return cert;
}

static EVP_PKEY *read_key(const char *path, char *err, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, n, "cannot read CA key %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, n, "CA key %s is not a regular file", path);
		return NULL;
	}
	if (st.st_mode & 077) {
		close(fd);
		snprintf(err, n, "CA key %s is readable by group or others (mode %04o); run: chmod 600 %s", path,
			 (unsigned)(st.st_mode & 07777), path);
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		snprintf(err, n, "cannot read CA key %s: %s", path, strerror(errno));
		return NULL;
	}
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!key)
		ca_openssl_error(err, n, path);
	return key;
}

static bool check_ca(ca_t *ca, const char *cert_path, char *err, size_t n)
{
	if (X509_check_ca(ca->cert) == 0) {
		snprintf(err, n, "%s is not a CA certificate (no basicConstraints CA:TRUE)", cert_path);
		return false;
	}
	if (ca->key && X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		snprintf(err, n, "the CA key does not belong to the certificate %s", cert_path);
		return false;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0) {
		snprintf(err, n, "CA certificate %s has expired", cert_path);
		return false;
	}
	return true;
}

static bool paths(const char *state_dir, char *cert_path, char *key_path, char *err, size_t n)
{
	if (!state_dir) {
		snprintf(err, n, "no CA: give --state-dir DIR (or --ca-cert FILE --ca-key FILE)");
		return false;
	}
	if (snprintf(cert_path, 4096, "%s/ca.pem", state_dir) >= 4096 ||
	    snprintf(key_path, 4096, "%s/ca.key", state_dir) >= 4096) {
		snprintf(err, n, "state dir path too long");
		return false;
	}
	return true;
}

bool ca_load_or_create(ca_t *ca, const char *state_dir, const char *cert_file, const char *key_file, char *err,
		       size_t n)
{
	memset(ca, 0, sizeof *ca);
	char cert_path[4096], key_path[4096];
	if (cert_file || key_file) {
		if (!cert_file || !key_file) {
			snprintf(err, n, "--ca-cert and --ca-key go together: give both or neither");
			return false;
		}
		snprintf(cert_path, sizeof cert_path, "%s", cert_file);
		snprintf(key_path, sizeof key_path, "%s", key_file);
	} else {
		if (!paths(state_dir, cert_path, key_path, err, n) || !ca_ensure_dir(state_dir, err, n))
			return false;
		bool have_cert = access(cert_path, F_OK) == 0, have_key = access(key_path, F_OK) == 0;
		if (!have_cert && !have_key) {
			if (!generate(ca, cert_path, key_path, err, n))
				return false;
			snprintf(ca->cert_path, sizeof ca->cert_path, "%s", cert_path);
			return true;
		}
		if (have_cert != have_key) {
			snprintf(err, n, "%s exists without %s: restore it, or remove both to make a new CA",
				 have_cert ? cert_path : key_path, have_cert ? key_path : cert_path);
			return false;
		}
	}
	ca->key = read_key(key_path, err, n);
	if (!ca->key)
		return false;
	ca->cert = read_cert(cert_path, err, n);
	if (!ca->cert || !check_ca(ca, cert_path, err, n)) {
		ca_free(ca);
		return false;
	}
	snprintf(ca->cert_path, sizeof ca->cert_path, "%s", cert_path);
	return true;
}

bool ca_load_cert(ca_t *ca, const char *state_dir, const char *cert_file, char *err, size_t n)
{
	memset(ca, 0, sizeof *ca);
	char cert_path[4096], key_path[4096];
	if (cert_file)
		snprintf(cert_path, sizeof cert_path, "%s", cert_file);
	else if (!paths(state_dir, cert_path, key_path, err, n))
		return false;
	ca->cert = read_cert(cert_path, err, n);
	if (!ca->cert)
		return false;
	if (!check_ca(ca, cert_path, err, n)) {
		ca_free(ca);
		return false;
	}
	snprintf(ca->cert_path, sizeof ca->cert_path, "%s", cert_path);
	return true;
}

void ca_free(ca_t *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	ca->cert = NULL;
	ca->key = NULL;
}
