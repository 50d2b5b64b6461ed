/*
 * `dlpgate edm build`: an organisation's table (CSV) into an exact data
 * match pack of salted hashes (detect/edm.h, schemas/edm-pack.md).
 */
#include "cli/cli.h"
#include "detect/edm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE "usage: dlpgate edm build --columns NAME:TYPE,... [--primary NAME,...] FILE.csv > edm.pack\n" \
	      "  TYPE: digits (account and customer numbers: digits only), alnum (ids: letters and digits,\n"     \
	      "  upper-cased), email (lower-cased), name (lower-cased, spaces and punctuation collapsed)\n"        \
	      "  --primary: the columns a detector may look for (digits, alnum or email; default: the first)"

static size_t parse_columns(char *spec, edm_column_t *cols)
{
	size_t n = 0;
	for (char *save = NULL, *tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (!colon)
			cli_fail("edm build: column \"%s\" needs a type (NAME:TYPE, TYPE digits, alnum, email or name)", tok);
		*colon = '\0';
		edm_type_t t = edm_type_by_name(colon + 1);
		if (!t)
			cli_fail("edm build: column %s: unknown type \"%s\" (digits, alnum, email, name)", tok, colon + 1);
		if (!tok[0] || strlen(tok) > 31)
			cli_fail("edm build: a column name is 1 to 31 characters");
		if (n == EDM_MAX_COLUMNS)
			cli_fail("edm build: at most %d columns", EDM_MAX_COLUMNS);
		for (size_t i = 0; i < n; i++)
			if (!strcmp(cols[i].name, tok))
				cli_fail("edm build: column %s twice", tok);
		snprintf(cols[n].name, sizeof cols[n].name, "%s", tok);
		cols[n].type = t;
		cols[n].searchable = false;
		n++;
	}
	return n;
}

static int edm_build_cmd(int argc, char **argv)
{
	char *columns = NULL, *primary = NULL;
	const char *csv = NULL;
	for (int i = 3; i < argc; i++) {
		if (cli_is(argv[i], "--columns"))
			columns = strdup(cli_value(argc, argv, &i, "--columns"));
		else if (cli_is(argv[i], "--primary"))
			primary = strdup(cli_value(argc, argv, &i, "--primary"));
		else if (argv[i][0] == '-' && argv[i][1])
			cli_fail("edm build: unknown option %s\n%s", argv[i], USAGE);
		else if (csv)
			cli_fail("edm build: one CSV file\n%s", USAGE);
		else
			csv = argv[i];
	}
	if (!columns || !csv)
		cli_fail("%s", USAGE);
	edm_column_t cols[EDM_MAX_COLUMNS];
	size_t n = parse_columns(columns, cols);
	if (!n)
		cli_fail("edm build: --columns names no column");
	if (primary) {
		for (char *save = NULL, *tok = strtok_r(primary, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			size_t i = 0;
			while (i < n && strcmp(cols[i].name, tok))
				i++;
			if (i == n)
				cli_fail("edm build: --primary %s is not one of --columns", tok);
			if (cols[i].type == EDM_NAME)
				cli_fail("edm build: %s is a name column: names corroborate, they cannot be primary (every "
					 "word of every body would be hashed)", tok);
			cols[i].searchable = true;
		}
	} else if (cols[0].type == EDM_NAME) {
		cli_fail("edm build: the first column is a name; give --primary (a digits, alnum or email column)");
	} else {
		cols[0].searchable = true;
	}
	if (isatty(STDOUT_FILENO))
		cli_fail("edm build: the pack is binary; redirect it to a file (> edm.pack)");
	cli_check_readable("edm build", csv);
	FILE *in = strcmp(csv, "-") ? fopen(csv, "rb") : stdin;
	if (!in)
		cli_fail("edm build: cannot open %s", csv);
	edm_build_stats_t st;
	char err[300];
	bool ok = edm_build(in, cols, n, stdout, &st, err, sizeof err);
	if (in != stdin)
		fclose(in);
	free(columns);
	free(primary);
	if (!ok)
		cli_fail("edm build: %s: %s", csv, err);
	fprintf(stderr, "dlpgate: edm pack of %llu rows, %zu columns%s", (unsigned long long)st.rows, n,
		st.header ? " (the first line was a header)" : "");
	if (st.skipped_rows)
		fprintf(stderr, "; %llu rows skipped (not %zu fields)", (unsigned long long)st.skipped_rows, n);
	for (size_t c = 0; c < n; c++)
		if (st.empty[c])
			fprintf(stderr, "; %s: %llu empty values", cols[c].name, (unsigned long long)st.empty[c]);
	fputc('\n', stderr);
	return 0;
}

int cli_edm(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[2], "build"))
		return edm_build_cmd(argc, argv);
	cli_fail("%s", USAGE);
}
