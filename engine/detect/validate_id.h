/*
 * validate_id: national identity and tax numbers (validate.h dispatches).
 *
 * Each takes the candidate as found, separators and all, and checks the
 * structure and the check digits its issuer defines; a number that merely
 * has the right length fails. Where a number has no check digit (UK NINO,
 * Indian PAN) the structure rules are all there is, and the detector must
 * bring context.
 */
#ifndef DLPGATE_VALIDATE_ID_H
#define DLPGATE_VALIDATE_ID_H

#include <stdbool.h>
#include <stddef.h>

bool validate_uk_nino(const char *s, size_t n);     /* prefix and suffix letters HMRC allocates */
bool validate_ca_sin(const char *s, size_t n);      /* 9 digits, Luhn, first digit not 0 or 8 */
bool validate_br_cpf(const char *s, size_t n);      /* 11 digits, two mod-11 check digits */
bool validate_br_cnpj(const char *s, size_t n);     /* 14 digits, two mod-11 check digits */
bool validate_in_pan(const char *s, size_t n);      /* AAAAA9999A, 4th letter a holder type */
bool validate_in_aadhaar(const char *s, size_t n);  /* 12 digits, not 0/1 first, Verhoeff */
bool validate_de_steuer_id(const char *s, size_t n); /* 11 digits, ISO 7064 MOD 11,10, repetition rule */
bool validate_fr_nir(const char *s, size_t n);      /* 13 (+2A/2B) + key 97 - N mod 97 */
bool validate_es_dni(const char *s, size_t n);      /* DNI 8 digits / NIE X|Y|Z 7 digits, mod-23 letter */
bool validate_nl_bsn(const char *s, size_t n);      /* 9 digits, the 11-proof */
bool validate_it_cf(const char *s, size_t n);       /* codice fiscale: 16 characters, check letter */
bool validate_verhoeff(const char *s, size_t n);    /* the digits of s carry a Verhoeff check digit */

#endif
