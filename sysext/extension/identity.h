/*
 * identity: who opened a flow, from its audit token (macOS only).
 *
 * The code signing API is asked about the process the token names: the
 * guest code (SecCodeCopyGuestWithAttributes with the token, which pins
 * the exact process instance, pid version included), whether it satisfies
 * "anchor apple", the App Store, Developer ID or nothing (ad hoc or
 * unsigned), and its signing identifier, team identifier and path. The
 * answer fills the frame the engine receives (sources/frame.h).
 *
 * It must be fast: handleNewFlow is serialised. Answers are kept in a
 * bounded cache (IDENTITY_CACHE entries, least recently used out) keyed
 * by the whole 32-byte token, so a process is checked once however many
 * connections it opens, and a recycled pid is never mistaken for it.
 */
#ifndef DLPGATE_SYSEXT_IDENTITY_H
#define DLPGATE_SYSEXT_IDENTITY_H

#include "sources/frame.h"

#include <stdbool.h>
#include <stddef.h>

#define IDENTITY_CACHE 512

/* Fills the app part of r from the audit token (token_len must be 32).
 * False when the token names no running process. Thread-safe. */
bool identity_from_audit_token(const void *token, size_t token_len, frame_request_t *r);

/* Does the token's code satisfy requirement (e.g. the engine daemon's own
 * "identifier \"com.dlpgate.engine\" and anchor apple generic and
 * certificate leaf[subject.OU] = \"TEAMID\"")? Used to exclude the
 * engine's flows by code, never by pid. */
bool identity_satisfies(const void *token, size_t token_len, const char *requirement);

#endif
