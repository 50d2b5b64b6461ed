/*
 * validate_id: national identity and tax numbers. See validate_id.h.
 *
 * Each validator first reduces the candidate to its significant
 * characters (digits, or upper-cased letters and digits), refusing any
 * other character except the separators people write (space, dash, dot,
 * slash), so "123.456.789-09" and "12345678909" are the same CPF and a
 * number glued to something else is not one. Numbers whose digits are all
 * the same pass several of these checksums and are nobody's: refused.
 */
#include "detect/validate_id.h"

#include "detect/validate.h"

#include <string.h>

/* Significant characters of s into out (letters upper-cased); false when
 * s holds anything else, or more than cap of them. */
static bool significant(const char *s, size_t n, char *out, size_t cap, size_t *k)
{
	*k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ' || c == '-' || c == '.' || c == '/')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) || *k == cap)
			return false;
		out[(*k)++] = c;
	}
	return true;
}

static bool all_digits(const char *d, size_t k)
{
	for (size_t i = 0; i < k; i++)
		if (d[i] < '0' || d[i] > '9')
			return false;
	return true;
}

static bool all_same(const char *d, size_t k)
{
	for (size_t i = 1; i < k; i++)
		if (d[i] != d[0])
			return false;
	return true;
}

/* Exactly `want` digits, nothing else significant. */
static bool digits_exactly(const char *s, size_t n, char *d, size_t want)
{
	size_t k;
	return significant(s, n, d, want, &k) && k == want && all_digits(d, k);
}

bool validate_uk_nino(const char *s, size_t n)
{
	char c[9];
	size_t k;
	if (!significant(s, n, c, sizeof c, &k) || k != 9 || !all_digits(c + 2, 6))
		return false;
	/* HMRC never allocates D F I Q U V first, nor D F I O Q U V second,
	 * nor these prefixes; the suffix is A to D. */
	if (c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || strchr("DFIQUV", c[0]) || strchr("DFIOQUV", c[1]))
		return false;
	static const char *const bad[] = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (c[0] == bad[i][0] && c[1] == bad[i][1])
			return false;
	if (c[8] < 'A' || c[8] > 'D')
		return false;
	return !all_same(c + 2, 6);
}

bool validate_ca_sin(const char *s, size_t n)
{
	char d[9];
	/* 0 is never issued, 8 is unused; 9 is temporary residents (valid) */
	return digits_exactly(s, n, d, 9) && d[0] != '0' && d[0] != '8' && !all_same(d, 9) && validate_luhn_digits(d, 9);
}

/* Check digit of d[0..k) by weights w: 11 - sum mod 11, 10 and 11 read 0. */
static int mod11_digit(const char *d, size_t k, const int *w)
{
	int sum = 0;
	for (size_t i = 0; i < k; i++)
		sum += (d[i] - '0') * w[i];
	int r = sum % 11;
	return r < 2 ? 0 : 11 - r;
}

bool validate_br_cpf(const char *s, size_t n)
{
	char d[11];
	if (!digits_exactly(s, n, d, 11) || all_same(d, 11))
		return false;
	static const int w1[] = {10, 9, 8, 7, 6, 5, 4, 3, 2}, w2[] = {11, 10, 9, 8, 7, 6, 5, 4, 3, 2};
	return mod11_digit(d, 9, w1) == d[9] - '0' && mod11_digit(d, 10, w2) == d[10] - '0';
}

bool validate_br_cnpj(const char *s, size_t n)
{
	char d[14];
	if (!digits_exactly(s, n, d, 14) || all_same(d, 14))
		return false;
	static const int w1[] = {5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}, w2[] = {6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
	return mod11_digit(d, 12, w1) == d[12] - '0' && mod11_digit(d, 13, w2) == d[13] - '0';
}

bool validate_in_pan(const char *s, size_t n)
{
	char c[10];
	size_t k;
	/* the digits are a sequence number, 0001 to 9999: 1111 is one */
	if (!significant(s, n, c, sizeof c, &k) || k != 10 || !all_digits(c + 5, 4) || memcmp(c + 5, "0000", 4) == 0)
		return false;
	for (int i = 0; i < 5; i++)
		if (c[i] < 'A' || c[i] > 'Z')
			return false;
	/* the 4th letter says who holds it: Person, Company, HUF, Firm, AOP,
	 * Trust, BOI, Local authority, artificial Juridical person, Government */
	return c[9] >= 'A' && c[9] <= 'Z' && strchr("PCHFATBLJG", c[3]) != NULL;
}

static const unsigned char verhoeff_d[10][10] = {
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
	{3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
	{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
	{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
static const unsigned char verhoeff_p[8][10] = {
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
	{8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
	{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};

static bool verhoeff_ok(const char *d, size_t k)
{
	unsigned c = 0;
	for (size_t i = 0; i < k; i++)
		c = verhoeff_d[c][verhoeff_p[i % 8][d[k - 1 - i] - '0']];
	return c == 0;
}

bool validate_verhoeff(const char *s, size_t n)
{
	char d[64];
	size_t k;
	return significant(s, n, d, sizeof d, &k) && k >= 2 && all_digits(d, k) && verhoeff_ok(d, k);
}

bool validate_in_aadhaar(const char *s, size_t n)
{
	char d[12];
	return digits_exactly(s, n, d, 12) && d[0] >= '2' && !all_same(d, 12) && verhoeff_ok(d, 12);
}

bool validate_de_steuer_id(const char *s, size_t n)
{
	char d[11];
	if (!digits_exactly(s, n, d, 11) || d[0] == '0')
		return false;
	/* Of the first ten digits exactly one occurs more than once: twice, or
	 * (since 2016) three times but not three in a row. */
	int count[10] = {0};
	for (int i = 0; i < 10; i++)
		count[d[i] - '0']++;
	int repeated = 0, times = 0;
	for (int v = 0; v < 10; v++)
		if (count[v] > 1) {
			repeated++;
			times = count[v];
		}
	if (repeated != 1 || times > 3)
		return false;
	if (times == 3)
		for (int i = 0; i + 2 < 10; i++)
			if (d[i] == d[i + 1] && d[i + 1] == d[i + 2])
				return false;
	/* ISO 7064 MOD 11,10 */
	int product = 10;
	for (int i = 0; i < 10; i++) {
		int sum = (d[i] - '0' + product) % 10;
		if (sum == 0)
			sum = 10;
		product = (sum * 2) % 11;
	}
	int check = 11 - product;
	if (check == 10)
		check = 0;
	return check == d[10] - '0';
}

bool validate_fr_nir(const char *s, size_t n)
{
	char c[15];
	size_t k;
	if (!significant(s, n, c, sizeof c, &k) || k != 15)
		return false;
	/* Corsica's departments 2A and 2B count as 19 and 18 */
	int corsica = 0;
	if (c[6] == 'A' || c[6] == 'B') {
		if (c[5] != '2')
			return false;
		corsica = c[6] == 'A' ? 1000000 : 2000000;
		c[6] = '0';
	}
	if (!all_digits(c, 15))
		return false;
	/* sex 1 or 2 (3, 4, 7, 8: people not yet registered), month 01-12 or
	 * 20 and above (unknown, or a placeholder) */
	int month = (c[3] - '0') * 10 + (c[4] - '0');
	if (!strchr("123478", c[0]) || month == 0 || (month > 12 && month < 20))
		return false;
	unsigned long long v = 0;
	for (int i = 0; i < 13; i++)
		v = v * 10 + (unsigned)(c[i] - '0');
	v -= (unsigned long long)corsica; /* 2A -> 19, 2B -> 18 at that position */
	int key = (c[13] - '0') * 10 + (c[14] - '0');
	return key >= 1 && key <= 97 && 97 - (int)(v % 97) == key;
}

bool validate_es_dni(const char *s, size_t n)
{
	char c[9];
	size_t k;
	if (!significant(s, n, c, sizeof c, &k) || k != 9)
		return false;
	char first = c[0];
	if (first == 'X' || first == 'Y' || first == 'Z')
		c[0] = (char)('0' + (first - 'X')); /* NIE: X=0, Y=1, Z=2 */
	if (!all_digits(c, 8) || c[8] < 'A' || c[8] > 'Z' || all_same(c, 8))
		return false;
	unsigned long v = 0;
	for (int i = 0; i < 8; i++)
		v = v * 10 + (unsigned)(c[i] - '0');
	return "TRWAGMYFPDXBNJZSQVHLCKE"[v % 23] == c[8];
}

bool validate_nl_bsn(const char *s, size_t n)
{
	char d[9];
	if (!digits_exactly(s, n, d, 9) || all_same(d, 9))
		return false;
	int sum = 0;
	for (int i = 0; i < 8; i++)
		sum += (9 - i) * (d[i] - '0');
	sum -= d[8] - '0';
	return sum % 11 == 0;
}

bool validate_it_cf(const char *s, size_t n)
{
	char c[16];
	size_t k;
	if (!significant(s, n, c, sizeof c, &k) || k != 16)
		return false;
	/* surname and name consonants, year, month letter, day (+40 for women),
	 * municipality letter, 3 digits, check letter; digits of the date and
	 * municipality may be swapped for LMNPQRSTUV where codes collide
	 * (omocodia) */
	static const char omocodia[] = "LMNPQRSTUV";
	static const int numeric[] = {6, 7, 9, 10, 12, 13, 14};
	for (int i = 0; i < 6; i++)
		if (c[i] < 'A' || c[i] > 'Z')
			return false;
	if (!strchr("ABCDEHLMPRST", c[8]) || c[11] < 'A' || c[11] > 'Z' || c[15] < 'A' || c[15] > 'Z')
		return false;
	for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++) {
		char x = c[numeric[i]];
		if (!(x >= '0' && x <= '9') && !(x >= 'A' && x <= 'Z' && strchr(omocodia, x)))
			return false;
	}
	/* characters in odd positions (1st, 3rd...) map through this table,
	 * digits as their letter (0 as A); even ones count their rank */
	static const int odd[26] = {1,  0,  5,  7,  9,  13, 15, 17, 19, 21, 2,  4,  18,
				    20, 11, 3,  6,  8,  12, 14, 16, 10, 22, 25, 24, 23};
	int sum = 0;
	for (int i = 0; i < 15; i++) {
		int rank = c[i] >= 'A' ? c[i] - 'A' : c[i] - '0';
		sum += (i % 2 == 0) ? odd[rank] : rank;
	}
	return c[15] == 'A' + sum % 26;
}
