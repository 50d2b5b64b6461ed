/*
 * digitruns: where a text holds long runs of digits.
 *
 * Card numbers, track data and social security numbers have no keyword
 * in front of them, so the keyword prefilter cannot keep their regexes
 * off a buffer; run over every byte they cost more than all the keyword
 * detectors together. What they do have is a run of digits. A detector
 * that declares `digits = N` promises that each of its matches holds N
 * digits, each one after the previous with at most one space or dash
 * between; the scan runs its regex only around such runs.
 *
 * The finder classifies 64 bytes at a time into bit masks (SSE2 where
 * the compiler has it, the same masks byte by byte elsewhere) and skips
 * a block outright when it holds too few digits to finish a run, so
 * prose and code cost well under a nanosecond a byte.
 */
#ifndef DLPGATE_DIGITRUNS_H
#define DLPGATE_DIGITRUNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A maximal run: digits, each followed by at most one ' ' or '-' before
 * the next. [start, end) spans first to last digit. */
typedef struct digit_run {
	uint32_t start, end;
	uint32_t digits;
} digit_run_t;

/* Writes the runs of buf holding at least min_digits digits (min_digits
 * >= 1), in text order, to out (room for cap). Returns how many there
 * are; more than cap means out holds the first cap of them. */
size_t digit_runs_find(const uint8_t *buf, size_t len, uint32_t min_digits, digit_run_t *out, size_t cap);

#endif
