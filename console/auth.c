/*
 * auth: tokens, their hashes and the enroll secret.
 *
 * Tokens are 32 random bytes as hex; the database keeps only their SHA-256,
 * so a copy of the database lets nobody act as an agent or an admin. A
 * lookup goes by the hash (an index hit), which leaks nothing useful: the
 * attacker controls the token, not its hash. The enroll secret is compared
 * in constant time, over the SHA-256 of both sides so that the lengths do
 * not show either. Nothing here logs a token or a secret.
 */
#include "console.h"
#include "core/log.h"

#include "tls/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "core/digest.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void console_random_hex(char *out, size_t nbytes)
{
	unsigned char b[64];
	if (nbytes > sizeof b)
		nbytes = sizeof b;
	if (RAND_bytes(b, (int)nbytes) != 1)
		abort(); /* no randomness: no safe token can be made */
	digest_hex(b, nbytes, out);
	OPENSSL_cleanse(b, sizeof b);
}

void console_sha256_hex(const char *s, char out[65])
{
	digest_sha256_hex(s, strlen(s), out);
}

bool console_secret_equal(const char *a, const char *b)
{
	unsigned char ha[32], hb[32];
	unsigned int n;
	EVP_Digest(a, strlen(a), ha, &n, EVP_sha256(), NULL);
	EVP_Digest(b, strlen(b), hb, &n, EVP_sha256(), NULL);
	return CRYPTO_memcmp(ha, hb, 32) == 0;
}

bool console_is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

static bool read_secret(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read enroll secret %s: %s", path, strerror(errno));
		return false;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		close(fd);
		snprintf(err, errlen, "enroll secret %s must be a regular file only its owner can read; run: chmod 600 %s",
			 path, path);
		return false;
	}
	ssize_t n = read(fd, out, outlen - 1);
	close(fd);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	if (strlen(out) < 16) {
		snprintf(err, errlen, "enroll secret %s is empty or shorter than 16 characters: write a longer one or "
			 "remove the file to have one generated", path);
		return false;
	}
	return true;
}

bool console_enroll_secret(console_t *c, char *err, size_t errlen)
{
	if (c->cfg.enroll_secret) {
		if (strlen(c->cfg.enroll_secret) < 16 || strlen(c->cfg.enroll_secret) >= sizeof c->enroll_secret) {
			snprintf(err, errlen, "--enroll-secret must be 16 to 255 characters");
			return false;
		}
		snprintf(c->enroll_secret, sizeof c->enroll_secret, "%s", c->cfg.enroll_secret);
		return true;
	}
	char path[4096];
	if (snprintf(path, sizeof path, "%s/enroll-secret", c->cfg.state_dir) >= (int)sizeof path) {
		snprintf(err, errlen, "--state-dir path too long");
		return false;
	}
	if (access(path, F_OK) == 0)
		return read_secret(path, c->enroll_secret, sizeof c->enroll_secret, err, errlen);
	char secret[65];
	console_random_hex(secret, 32);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return false;
	}
	bool ok = write(fd, secret, 64) == 64 && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	close(fd);
	if (!ok) {
		unlink(path);
		snprintf(err, errlen, "cannot write %s", path);
		return false;
	}
	snprintf(c->enroll_secret, sizeof c->enroll_secret, "%s", secret);
	OPENSSL_cleanse(secret, sizeof secret);
	/* The path, never the secret: agents are given it out of band. A log
	 * line, so --log-format json keeps every line of stderr parseable. */
	log_line_t l;
	log_begin(&l, LOG_INFO, "enroll_secret_generated");
	log_kv_str(&l, "path", path);
	log_end(&l);
	return true;
}
