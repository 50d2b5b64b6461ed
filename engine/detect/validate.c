#include "detect/validate.h"

#include "detect/validate_id.h"

#include <math.h>
#include <string.h>

/* Digits of s, in order, into d; returns their count (up to cap). */
static size_t digits(const char *s, size_t n, char *d, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] >= '0' && s[i] <= '9') {
			if (k == cap)
				return cap + 1; /* too many */
			d[k++] = s[i];
		}
	return k;
}

bool validate_luhn(const char *s, size_t n)
{
	char d[20];
	size_t k = digits(s, n, d, sizeof d - 1);
	if (k < 12 || k > 19)
		return false;
	/* All zeros passes Luhn and is nobody's card. */
	bool all_same = true;
	for (size_t i = 1; i < k; i++)
		if (d[i] != d[0])
			all_same = false;
	return validate_luhn_digits(d, k) && !all_same;
}

bool validate_luhn_digits(const char *d, size_t k)
{
	int sum = 0;
	for (size_t i = 0; i < k; i++) {
		int v = d[k - 1 - i] - '0';
		if (i & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/* IBAN lengths by country (ISO 13616 registry). */
static const struct {
	char cc[3];
	unsigned char len;
} iban_len[] = {
	{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
	{"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
	{"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
	{"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
	{"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
	{"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
	{"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
	{"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
	{"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
	{"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

bool validate_iban(const char *s, size_t n)
{
	char c[40];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char x = s[i];
		if (x == ' ' || x == '-')
			continue;
		if (x >= 'a' && x <= 'z')
			x = (char)(x - 32);
		if (!((x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9')) || k == sizeof c)
			return false;
		c[k++] = x;
	}
	if (k < 15 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] > '9' || c[3] > '9')
		return false;
	bool known = false;
	for (size_t i = 0; i < sizeof iban_len / sizeof iban_len[0]; i++)
		if (c[0] == iban_len[i].cc[0] && c[1] == iban_len[i].cc[1]) {
			if (k != iban_len[i].len)
				return false;
			known = true;
		}
	if (!known)
		return false;
	/* Move the first four to the end, letters to 10..35, mod 97. */
	unsigned rem = 0;
	for (size_t i = 0; i < k; i++) {
		char x = c[(i + 4) % k];
		if (x >= 'A')
			rem = (rem * 100 + (unsigned)(x - 'A' + 10)) % 97;
		else
			rem = (rem * 10 + (unsigned)(x - '0')) % 97;
	}
	return rem == 1;
}

bool validate_us_ssn(const char *s, size_t n)
{
	char d[10];
	if (digits(s, n, d, 9) != 9)
		return false;
	int area = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
	int group = (d[3] - '0') * 10 + (d[4] - '0');
	int serial = (d[5] - '0') * 1000 + (d[6] - '0') * 100 + (d[7] - '0') * 10 + (d[8] - '0');
	if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
		return false;
	/* Published in advertising, used by thousands: not a real person's. */
	if (!memcmp(d, "078051120", 9) || !memcmp(d, "219099999", 9) || !memcmp(d, "123456789", 9))
		return false;
	return true;
}

bool validate_aba(const char *s, size_t n)
{
	char d[10];
	if (digits(s, n, d, 9) != 9)
		return false;
	int prefix = (d[0] - '0') * 10 + (d[1] - '0');
	if (!((prefix <= 12) || (prefix >= 21 && prefix <= 32) || (prefix >= 61 && prefix <= 72) || prefix == 80))
		return false;
	static const int w[9] = {3, 7, 1, 3, 7, 1, 3, 7, 1};
	int sum = 0;
	for (int i = 0; i < 9; i++)
		sum += w[i] * (d[i] - '0');
	return sum % 10 == 0 && memcmp(d, "000000000", 9) != 0;
}

double validate_entropy(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	unsigned count[256] = {0};
	for (size_t i = 0; i < n; i++)
		count[(unsigned char)s[i]]++;
	double h = 0;
	for (int c = 0; c < 256; c++)
		if (count[c]) {
			double p = (double)count[c] / (double)n;
			h -= p * log2(p);
		}
	return h;
}

static const char *const names[] = {"", "luhn", "iban", "us_ssn", "aba", "uk_nino", "ca_sin", "br_cpf",
				   "br_cnpj", "in_pan", "in_aadhaar", "de_steuer_id", "fr_nir", "es_dni", "nl_bsn",
				   "it_cf", "verhoeff"};
_Static_assert(sizeof names / sizeof names[0] == VALIDATE_COUNT, "a name per validator");

const char *validate_names(void)
{
	return "luhn, iban, us_ssn, aba, uk_nino, ca_sin, br_cpf, br_cnpj, in_pan, in_aadhaar, de_steuer_id, fr_nir, "
	       "es_dni, nl_bsn, it_cf, verhoeff";
}

int validate_by_name(const char *name)
{
	for (int i = 1; i < (int)(sizeof names / sizeof names[0]); i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

const char *validate_name(validator_t v)
{
	return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "?";
}

bool validate_run(validator_t v, const char *s, size_t n)
{
	switch (v) {
	case VALIDATE_NONE: return true;
	case VALIDATE_LUHN: return validate_luhn(s, n);
	case VALIDATE_IBAN: return validate_iban(s, n);
	case VALIDATE_US_SSN: return validate_us_ssn(s, n);
	case VALIDATE_ABA: return validate_aba(s, n);
	case VALIDATE_UK_NINO: return validate_uk_nino(s, n);
	case VALIDATE_CA_SIN: return validate_ca_sin(s, n);
	case VALIDATE_BR_CPF: return validate_br_cpf(s, n);
	case VALIDATE_BR_CNPJ: return validate_br_cnpj(s, n);
	case VALIDATE_IN_PAN: return validate_in_pan(s, n);
	case VALIDATE_IN_AADHAAR: return validate_in_aadhaar(s, n);
	case VALIDATE_DE_STEUER_ID: return validate_de_steuer_id(s, n);
	case VALIDATE_FR_NIR: return validate_fr_nir(s, n);
	case VALIDATE_ES_DNI: return validate_es_dni(s, n);
	case VALIDATE_NL_BSN: return validate_nl_bsn(s, n);
	case VALIDATE_IT_CF: return validate_it_cf(s, n);
	case VALIDATE_VERHOEFF: return validate_verhoeff(s, n);
	case VALIDATE_COUNT: break;
	}
	return false;
}
