/*
 * `dlpgate ca init|export|install|uninstall|env`: only the certificate is
 * ever read here; the key is not needed to trust a CA and is never opened.
 *
 * install trusts the CA where programs look for trust:
 *   - the system store (Debian's update-ca-certificates; the System
 *     keychain on macOS), when run as root;
 *   - NSS databases, which Chromium and Firefox read instead of the system
 *     store: the system-wide /etc/pki/nssdb, and per user ~/.pki/nssdb
 *     (Chromium), Firefox profiles under ~/.mozilla/firefox, and the snap
 *     packages' copies of both. As root, every existing database of every
 *     user is changed; with --user (or as anyone else), only those of $HOME,
 *     and ~/.pki/nssdb is created when missing (Chromium reads it from its
 *     first start).
 * Every store it changed is printed and recorded in ca-installed.json
 * (the state dir, or beside --ca-cert); uninstall undoes exactly what that
 * record says: removes the certificate (by its nickname, which names this
 * CA's fingerprint) from the databases it was added to, deletes the
 * databases install created, and nothing else. A store that held the
 * certificate before install is left alone (and not recorded).
 *
 * env prints, shell-quoted, what makes runtimes that ignore the system
 * store trust the CA: a bundle (the system's roots plus this CA, written
 * beside the record) for the variables that replace a store, the CA alone
 * for Node's NODE_EXTRA_CA_CERTS, which adds to one.
 */
#include "cli/cli.h"
#include "tls/ca.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SYSTEM_DIR "/usr/local/share/ca-certificates"
#define SYSTEM_FILE SYSTEM_DIR "/dlpgate.crt"
#define MAX_STORES 256

/* Runs argv; its exit code (127: could not run). Output goes to /dev/null
 * unless show. */
static int run(char *const argv[], bool show)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (!show) {
			int fd = open("/dev/null", O_WRONLY);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return 127;
	return WEXITSTATUS(status);
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
	return access(p, F_OK) == 0;
}

/* ---- the record ---- */

typedef struct {
	char nickname[64];
	char record_path[PATH_MAX + 32];
	char dir[PATH_MAX]; /* where the record and the env bundle live */
} ctx_t;

static void nickname_of(const ca_t *ca, char out[64])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	X509_digest(ca->cert, EVP_sha256(), md, &n);
	int o = snprintf(out, 64, "dlpgate CA ");
	for (unsigned i = 0; i < 8 && i < n; i++)
		o += snprintf(out + o, (size_t)(64 - o), "%02X", md[i]);
}

static void ctx_init(ctx_t *c, const ca_t *ca, const char *state_dir, const char *cert)
{
	nickname_of(ca, c->nickname);
	if (state_dir) {
		snprintf(c->dir, sizeof c->dir, "%s", state_dir);
	} else {
		snprintf(c->dir, sizeof c->dir, "%s", cert);
		char *slash = strrchr(c->dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(c->dir, sizeof c->dir, ".");
	}
	snprintf(c->record_path, sizeof c->record_path, "%s/ca-installed.json", c->dir);
}

static json_t *record_load(const ctx_t *c)
{
	json_error_t je;
	json_t *r = exists(c->record_path) ? json_load_file(c->record_path, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (exists(c->record_path) && (!r || !json_is_array(json_object_get(r, "stores"))))
		cli_fail("%s is damaged (%s): fix or remove it", c->record_path, r ? "no stores" : je.text);
	if (!r)
		r = json_pack("{s:s, s:[]}", "nickname", c->nickname, "stores");
	const char *nick = json_string_value(json_object_get(r, "nickname"));
	if (!nick || strcmp(nick, c->nickname))
		cli_fail("%s records another CA (%s): run `dlpgate ca uninstall` with that CA first", c->record_path,
			 nick ? nick : "?");
	return r;
}

static void record_save(const ctx_t *c, json_t *r)
{
	char tmp[sizeof c->record_path + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", c->record_path);
	if (json_dump_file(r, tmp, JSON_INDENT(2)) != 0 || rename(tmp, c->record_path) != 0)
		cli_fail("cannot write %s: %s (the stores above were changed; remove the certificate %s by hand)",
			 c->record_path, strerror(errno), c->nickname);
}

static bool recorded(json_t *r, const char *type, const char *where)
{
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(r, "stores"), i, s)
	{
		if (!strcmp(json_string_value(json_object_get(s, "type")), type) &&
		    !strcmp(json_string_value(json_object_get(s, "path")), where))
			return true;
	}
	return false;
}

/* ---- NSS ---- */

typedef struct {
	char path[MAX_STORES][PATH_MAX];
	bool create[MAX_STORES]; /* not there yet: install makes it */
	size_t n;
} stores_t;

static void add_store(stores_t *s, const char *dir, bool create)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->path[i], dir))
			return;
	if (s->n < MAX_STORES) {
		snprintf(s->path[s->n], PATH_MAX, "%s", dir);
		s->create[s->n++] = create;
	}
}

static bool is_nssdb(const char *dir)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/cert9.db", dir);
	if (exists(p))
		return true;
	snprintf(p, sizeof p, "%s/cert8.db", dir);
	return exists(p);
}

/* Firefox profiles: every directory under root holding a database. */
static void firefox_profiles(stores_t *s, const char *root)
{
	DIR *d = opendir(root);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/%s", root, e->d_name);
		if (is_dir(p) && is_nssdb(p))
			add_store(s, p, false);
	}
	closedir(d);
}

/* The databases of one home: Chromium's, Firefox profiles, their snaps. */
static void home_stores(stores_t *s, const char *home, bool create_chromium)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/.pki/nssdb", home);
	if (is_nssdb(p))
		add_store(s, p, false);
	else if (create_chromium)
		add_store(s, p, true);
	snprintf(p, sizeof p, "%s/snap/chromium/current/.pki/nssdb", home);
	if (is_nssdb(p))
		add_store(s, p, false);
	snprintf(p, sizeof p, "%s/.mozilla/firefox", home);
	firefox_profiles(s, p);
	snprintf(p, sizeof p, "%s/snap/firefox/common/.mozilla/firefox", home);
	firefox_profiles(s, p);
}

static bool nss_has(const char *dir, const char *nick)
{
	char db[PATH_MAX + 8];
	snprintf(db, sizeof db, "sql:%s", dir);
	char *argv[] = {"certutil", "-L", "-d", db, "-n", (char *)nick, NULL};
	return run(argv, false) == 0;
}

static bool mkdirs(const char *dir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return false;
		*s = '/';
	}
	return mkdir(p, 0700) == 0 || errno == EEXIST;
}

static void nss_install(const ctx_t *c, const ca_t *ca, json_t *rec, const stores_t *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const char *dir = s->path[i];
		char db[PATH_MAX + 8];
		snprintf(db, sizeof db, "sql:%s", dir);
		if (recorded(rec, "nss", dir))
			continue; /* ours from an earlier install */
		if (!s->create[i] && nss_has(dir, c->nickname)) {
			printf("dlpgate: NSS %s already trusts %s (left as it is)\n", dir, c->nickname);
			continue;
		}
		/* the first directory that did not exist: uninstall removes up to it */
		char top[PATH_MAX] = "";
		if (s->create[i]) {
			snprintf(top, sizeof top, "%s", dir);
			for (char *slash; (slash = strrchr(top, '/')) && slash != top;) {
				*slash = '\0';
				if (exists(top)) {
					*slash = '/';
					break;
				}
			}
			char *mk[] = {"certutil", "-N", "-d", db, "--empty-password", NULL};
			if (!mkdirs(dir) || run(mk, false) != 0) {
				fprintf(stderr, "dlpgate: cannot create the NSS database %s; skipped\n", dir);
				continue;
			}
		}
		char *add[] = {"certutil", "-A", "-d", db, "-n", (char *)c->nickname, "-t", "C,,", "-i",
			       (char *)ca->cert_path, NULL};
		if (run(add, false) != 0) {
			fprintf(stderr, "dlpgate: certutil could not add the CA to %s; skipped\n", dir);
			continue;
		}
		json_t *entry = json_pack("{s:s, s:s, s:b}", "type", "nss", "path", dir, "created", s->create[i]);
		if (s->create[i])
			json_object_set_new(entry, "created_from", json_string(top));
		json_array_append_new(json_object_get(rec, "stores"), entry);
		record_save(c, rec); /* after each store: a crash leaves a true record */
		printf("dlpgate: CA installed into NSS %s%s\n", dir, s->create[i] ? " (created)" : "");
	}
}

static void nss_uninstall(const ctx_t *c, const char *dir, bool created, const char *created_from)
{
	char db[PATH_MAX + 8];
	snprintf(db, sizeof db, "sql:%s", dir);
	if (!is_dir(dir)) {
		printf("dlpgate: NSS %s is gone already\n", dir);
		return;
	}
	char *del[] = {"certutil", "-D", "-d", db, "-n", (char *)c->nickname, NULL};
	if (nss_has(dir, c->nickname) && run(del, false) != 0)
		cli_fail("certutil could not remove %s from %s", c->nickname, dir);
	if (created) {
		static const char *const files[] = {"cert9.db", "key4.db", "pkcs11.txt", NULL};
		for (int i = 0; files[i]; i++) {
			char p[PATH_MAX + 16];
			snprintf(p, sizeof p, "%s/%s", dir, files[i]);
			unlink(p);
		}
		/* the directories install made, if nothing else was put there since */
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s", dir);
		size_t stop = created_from ? strlen(created_from) : strlen(p);
		while (strlen(p) >= stop && rmdir(p) == 0) {
			char *slash = strrchr(p, '/');
			if (!slash || slash == p)
				break;
			*slash = '\0';
		}
	}
	printf("dlpgate: CA removed from NSS %s%s\n", dir, created ? " (which install had created)" : "");
}

/* ---- the system store ---- */

static bool system_install(const ca_t *ca)
{
#ifdef __APPLE__
	char *argv[] = {"security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k",
			"/Library/Keychains/System.keychain", (char *)ca->cert_path, NULL};
	if (run(argv, true) != 0)
		cli_fail("security add-trusted-cert failed: the CA is not installed");
	return true;
#else
	if (access("/usr/sbin/update-ca-certificates", X_OK) != 0) {
		fprintf(stderr, "dlpgate: no update-ca-certificates (Debian package ca-certificates): the system store "
				"was not changed\n");
		return false;
	}
	mkdir(SYSTEM_DIR, 0755);
	FILE *f = fopen(SYSTEM_FILE, "w");
	if (!f)
		cli_fail("cannot write %s: %s", SYSTEM_FILE, strerror(errno));
	if (PEM_write_X509(f, ca->cert) != 1 || fclose(f) != 0)
		cli_fail("cannot write %s", SYSTEM_FILE);
	chmod(SYSTEM_FILE, 0644);
	char *argv[] = {"update-ca-certificates", NULL};
	if (run(argv, false) != 0)
		cli_fail("update-ca-certificates failed: the CA is not installed in the system store");
	return true;
#endif
}

static void system_uninstall(const char *path)
{
#ifdef __APPLE__
	char *argv[] = {"security", "remove-trusted-cert", "-d", (char *)path, NULL};
	if (run(argv, true) != 0)
		cli_fail("security remove-trusted-cert failed");
#else
	if (unlink(path) != 0 && errno != ENOENT)
		cli_fail("cannot remove %s: %s", path, strerror(errno));
	char *argv[] = {"update-ca-certificates", "--fresh", NULL};
	if (run(argv, false) != 0)
		cli_fail("update-ca-certificates failed after removing %s", path);
#endif
	printf("dlpgate: CA removed from the system store (%s)\n", path);
}

static const char *system_store_name(const ca_t *ca)
{
#ifdef __APPLE__
	return ca->cert_path; /* what remove-trusted-cert needs */
#else
	(void)ca;
	return SYSTEM_FILE;
#endif
}

/* ---- commands ---- */

static const char *user_home(void)
{
	const char *h = getenv("HOME");
	if (h && *h == '/')
		return h;
	struct passwd *pw = getpwuid(geteuid());
	return pw ? pw->pw_dir : NULL;
}

static int install(const ctx_t *c, const ca_t *ca, bool user_only)
{
	json_t *rec = record_load(c);
	bool root = geteuid() == 0;
	if (root && !user_only && !recorded(rec, "system", system_store_name(ca)) && system_install(ca)) {
		json_array_append_new(json_object_get(rec, "stores"),
				      json_pack("{s:s, s:s}", "type", "system", "path", system_store_name(ca)));
		record_save(c, rec);
		printf("dlpgate: CA %s installed into the system store (%s)\n", ca->cert_path, system_store_name(ca));
	}
	stores_t *s = calloc(1, sizeof *s);
	if (!s)
		cli_fail("out of memory");
	if (root && !user_only) {
		if (is_nssdb("/etc/pki/nssdb"))
			add_store(s, "/etc/pki/nssdb", false);
		struct passwd *pw;
		setpwent();
		while ((pw = getpwent()))
			if ((pw->pw_uid == 0 || pw->pw_uid >= 1000) && pw->pw_dir && is_dir(pw->pw_dir))
				home_stores(s, pw->pw_dir, false);
		endpwent();
	} else {
		const char *home = user_home();
		if (!home)
			cli_fail("no HOME: cannot find your NSS databases");
		home_stores(s, home, true);
	}
	bool certutil = access("/usr/bin/certutil", X_OK) == 0 || access("/usr/local/bin/certutil", X_OK) == 0;
	if (s->n && !certutil)
		fprintf(stderr, "dlpgate: %zu NSS database(s) found but no certutil (Debian package libnss3-tools): "
				"Chromium and Firefox will not trust the CA\n", s->n);
	else
		nss_install(c, ca, rec, s);
	free(s);
	record_save(c, rec);
	json_decref(rec);
	return 0;
}

static int uninstall(const ctx_t *c)
{
	if (!exists(c->record_path)) {
		printf("dlpgate: %s does not exist: nothing was installed from here\n", c->record_path);
		return 0;
	}
	json_t *rec = record_load(c);
	json_t *stores = json_object_get(rec, "stores");
	/* newest first: undo in reverse */
	for (size_t i = json_array_size(stores); i-- > 0;) {
		json_t *st = json_array_get(stores, i);
		const char *type = json_string_value(json_object_get(st, "type"));
		const char *path = json_string_value(json_object_get(st, "path"));
		if (!type || !path)
			continue;
		if (!strcmp(type, "nss"))
			nss_uninstall(c, path, json_is_true(json_object_get(st, "created")),
				      json_string_value(json_object_get(st, "created_from")));
		else if (!strcmp(type, "system"))
			system_uninstall(path);
		json_array_remove(stores, i);
		record_save(c, rec);
	}
	json_decref(rec);
	if (unlink(c->record_path) != 0)
		cli_fail("cannot remove %s: %s", c->record_path, strerror(errno));
	return 0;
}

/* 'text' with every ' as '\'' : safe in sh, bash, zsh. */
static void shell_quoted(const char *s)
{
	putchar('\'');
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	}
	putchar('\'');
}

static int env(const ctx_t *c, const ca_t *ca)
{
	/* The variables that replace a store need the public roots too, or
	 * every site dlpgate leaves alone would fail. */
	static const char *const roots[] = {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
					    "/etc/ssl/cert.pem", NULL};
	char bundle[PATH_MAX + 32];
	snprintf(bundle, sizeof bundle, "%s/ca-bundle.pem", c->dir);
	char tmp[PATH_MAX + 40];
	snprintf(tmp, sizeof tmp, "%s.tmp", bundle);
	FILE *out = fopen(tmp, "w");
	if (!out)
		cli_fail("cannot write %s: %s", tmp, strerror(errno));
	for (int i = 0; roots[i]; i++) {
		FILE *in = fopen(roots[i], "r");
		if (!in)
			continue;
		char buf[65536];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, in)) > 0)
			fwrite(buf, 1, n, out);
		fclose(in);
		fputc('\n', out);
		break;
	}
	if (PEM_write_X509(out, ca->cert) != 1 || fclose(out) != 0 || chmod(tmp, 0644) != 0 || rename(tmp, bundle) != 0)
		cli_fail("cannot write %s", bundle);
	printf("# %s: eval \"$(dlpgate ca env ...)\" or add these to your shell profile\n", c->nickname);
	static const char *const replace[] = {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
					      NULL};
	printf("export NODE_EXTRA_CA_CERTS=");
	shell_quoted(ca->cert_path);
	putchar('\n');
	for (int i = 0; replace[i]; i++) {
		printf("export %s=", replace[i]);
		shell_quoted(bundle);
		putchar('\n');
	}
	printf("# git, for every shell: git config --global http.sslCAInfo ");
	shell_quoted(bundle);
	printf("\n# Java (JDK 9+; as root for the JDK's own truststore):\n# keytool -importcert -noprompt -cacerts "
	       "-storepass changeit -alias dlpgate -file ");
	shell_quoted(ca->cert_path);
	putchar('\n');
	return 0;
}

int cli_ca(int argc, char **argv)
{
	static const char *const cmds[] = {"init", "export", "install", "uninstall", "env", NULL};
	bool known = false;
	for (int i = 0; argc >= 3 && cmds[i]; i++)
		known |= !strcmp(argv[2], cmds[i]);
	if (!known)
		cli_fail("usage: dlpgate ca init --state-dir DIR | dlpgate ca export|install|uninstall|env "
			 "(--state-dir DIR | --ca-cert FILE) [--user]");
	const char *state_dir = NULL, *cert = NULL;
	bool user_only = false;
	for (int i = 3; i < argc; i++) {
		if (cli_is(argv[i], "--state-dir"))
			state_dir = cli_value(argc, argv, &i, "--state-dir");
		else if (cli_is(argv[i], "--ca-cert"))
			cert = cli_value(argc, argv, &i, "--ca-cert");
		else if (!strcmp(argv[i], "--user") && (!strcmp(argv[2], "install")))
			user_only = true;
		else
			cli_fail("unknown option for ca %s: %s (see dlpgate --help)", argv[2], argv[i]);
	}
	if (!state_dir && !cert)
		cli_fail("ca %s needs --state-dir DIR or --ca-cert FILE", argv[2]);
	ca_t ca;
	char err[512];
	if (!strcmp(argv[2], "init")) {
		/* Makes the CA `dlpgate run` would make, without running. */
		if (!state_dir || cert)
			cli_fail("ca init needs --state-dir DIR (and no --ca-cert)");
		if (!ca_load_or_create(&ca, state_dir, NULL, NULL, err, sizeof err))
			cli_fail("%s", err);
		printf("%s\n", ca.cert_path);
		ca_free(&ca);
		return 0;
	}
	if (!ca_load_cert(&ca, state_dir, cert, err, sizeof err))
		cli_fail("%s%s", err, state_dir && !cert ? " (has `dlpgate run` made the CA yet?)" : "");
	ctx_t c;
	ctx_init(&c, &ca, state_dir, ca.cert_path);
	int rc = 0;
	if (!strcmp(argv[2], "export")) {
		if (PEM_write_X509(stdout, ca.cert) != 1 || fflush(stdout) != 0)
			cli_fail("cannot write the certificate to stdout");
	} else if (!strcmp(argv[2], "install")) {
		rc = install(&c, &ca, user_only);
	} else if (!strcmp(argv[2], "uninstall")) {
		rc = uninstall(&c);
	} else {
		rc = env(&c, &ca);
	}
	ca_free(&ca);
	return rc;
}
