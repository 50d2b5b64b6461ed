/*
 * validate: checksums and structure rules that turn "looks like" into "is".
 *
 * Each validator takes the candidate as found (separators and all) and
 * looks only at what it needs (digits, letters). They are the difference
 * between flagging every 16-digit order number and flagging card numbers.
 */
#ifndef DLPGATE_VALIDATE_H
#define DLPGATE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
	VALIDATE_NONE = 0,
	VALIDATE_LUHN,    /* payment cards: 12-19 digits, Luhn mod 10 */
	VALIDATE_IBAN,    /* ISO 13616: country length, mod 97 == 1 */
	VALIDATE_US_SSN,  /* area/group/serial rules, known-bad numbers */
	VALIDATE_ABA,     /* US routing numbers: 3-7-1 weights, valid prefixes */
	/* national identity and tax numbers (validate_id.h) */
	VALIDATE_UK_NINO, VALIDATE_CA_SIN, VALIDATE_BR_CPF, VALIDATE_BR_CNPJ, VALIDATE_IN_PAN,
	VALIDATE_IN_AADHAAR, VALIDATE_DE_STEUER_ID, VALIDATE_FR_NIR, VALIDATE_ES_DNI, VALIDATE_NL_BSN,
	VALIDATE_IT_CF, VALIDATE_VERHOEFF,
	VALIDATE_COUNT
} validator_t;

/* The validator named name ("luhn", "iban", "us_ssn", "aba", "uk_nino", ...), or -1. */
int validate_by_name(const char *name);
const char *validate_name(validator_t v);
/* Every name, comma-separated (for error messages). */
const char *validate_names(void);
bool validate_run(validator_t v, const char *s, size_t n);

bool validate_luhn(const char *s, size_t n);
/* The Luhn sum of k digits (ASCII '0'-'9', nothing else) is a multiple of 10. */
bool validate_luhn_digits(const char *d, size_t k);
bool validate_iban(const char *s, size_t n);
bool validate_us_ssn(const char *s, size_t n);
bool validate_aba(const char *s, size_t n);
/* Shannon entropy in bits per byte. */
double validate_entropy(const char *s, size_t n);

#endif
