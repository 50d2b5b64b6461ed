/*
 * PostgreSQL for tests: a private server started from Debian's binaries,
 * in this process's temp dir, on a free port of 127.0.0.1, as the postgres
 * user (the server refuses to run as root). fsync is off: the tests prove
 * behaviour, not the disk.
 */
#include "harness/harness.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

static void run_as_postgres(const char *const args[], int timeout_ms)
{
	const char *argv[24] = {"/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"};
	int a = 5;
	for (int i = 0; args[i] && a < 23; i++)
		argv[a++] = args[i];
	argv[a] = NULL;
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, timeout_ms);
	if (rc != 0)
		th_fail("%s: exit %d: %s %s", args[0], rc, out, err);
	free(out), free(err);
}

th_postgres th_postgres_start(void)
{
	if (access(PG_BIN "/initdb", X_OK) != 0 || access(PG_BIN "/postgres", X_OK) != 0)
		th_fail("PostgreSQL server binaries are missing in " PG_BIN ": run `make deps` (scripts/deps.sh "
			"installs the postgresql package)");
	struct passwd *pw = getpwnam("postgres");
	if (!pw)
		th_fail("no postgres user: run `make deps` (the postgresql package creates it)");
	static int n;
	char name[32];
	snprintf(name, sizeof name, "pg%d", n++);
	th_postgres pg = {0};
	pg.dir = th_path(name);
	if (mkdir(pg.dir, 0700) != 0 || chown(pg.dir, pw->pw_uid, pw->pw_gid) != 0)
		th_fail("cannot make %s for postgres", pg.dir);
	char data[600];
	snprintf(data, sizeof data, "%s/data", pg.dir);
	run_as_postgres((const char *const[]){PG_BIN "/initdb", "-D", data, "-A", "trust", "-U", "postgres",
					      "--no-locale", "-E", "UTF8", "--no-sync", NULL},
			60000);
	pg.port = th_free_port();
	char port[16], log[64];
	snprintf(port, sizeof port, "%d", pg.port);
	snprintf(log, sizeof log, "%s.log", name);
	const char *argv[] = {"/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--",
			      PG_BIN "/postgres", "-D", data, "-k", pg.dir, "-p", port, "-h", "127.0.0.1",
			      "-c", "fsync=off", NULL};
	pg.proc = th_spawn((char *const *)argv, log);
	for (int i = 0;; i++) {
		char *l = th_log(&pg.proc);
		bool ready = strstr(l, "ready to accept connections") != NULL;
		if (!ready && (!th_alive(&pg.proc) || i == 1500))
			th_fail("postgres %s: %s", th_alive(&pg.proc) ? "not ready after 15 s" : "exited", l);
		free(l);
		if (ready)
			break;
		usleep(10000);
	}
	snprintf(pg.url, sizeof pg.url, "postgresql://postgres@127.0.0.1:%d/postgres", pg.port);
	return pg;
}

void th_postgres_stop(th_postgres *pg)
{
	th_stop(&pg->proc);
	free(pg->dir);
	pg->dir = NULL;
}
