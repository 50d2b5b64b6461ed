/*
 * identity: see identity.h. macOS only (Security framework, bsm).
 *
 * The requirements are compiled once. The anchor is the first that the
 * code satisfies, strongest first:
 *   apple         anchor apple                         (the platform)
 *   app_store     anchor apple generic and certificate leaf[field.1.2.840.113635.100.6.1.9]
 *   developer_id  anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6]
 *                 and certificate leaf[field.1.2.840.113635.100.6.1.13]
 *   adhoc         signed, no certificate (kSecCodeSignatureAdhoc)
 *   unsigned      anything else
 */
#include "identity.h"

#include <CommonCrypto/CommonDigest.h>
#include <Security/Security.h>
#include <bsm/libbsm.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct {
	unsigned char token[32];
	uint64_t used;
	frame_request_t app; /* only .app is kept */
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t cache[IDENTITY_CACHE];
static size_t n_cache;
static uint64_t clock_;
static SecRequirementRef req_apple, req_app_store, req_developer_id;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static SecRequirementRef requirement(const char *text)
{
	SecRequirementRef r = NULL;
	CFStringRef s = CFStringCreateWithCString(NULL, text, kCFStringEncodingUTF8);
	if (s) {
		SecRequirementCreateWithString(s, kSecCSDefaultFlags, &r);
		CFRelease(s);
	}
	return r;
}

static void compile_requirements(void)
{
	req_apple = requirement("anchor apple");
	req_app_store = requirement("anchor apple generic and certificate leaf[field.1.2.840.113635.100.6.1.9]");
	req_developer_id = requirement("anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6] and "
				       "certificate leaf[field.1.2.840.113635.100.6.1.13]");
}

static SecCodeRef guest(const void *token, size_t len)
{
	SecCodeRef code = NULL;
	CFDataRef data = CFDataCreate(NULL, token, (CFIndex)len);
	CFDictionaryRef attrs = data ? CFDictionaryCreate(NULL, (const void **)&kSecGuestAttributeAudit,
							  (const void **)&data, 1, &kCFTypeDictionaryKeyCallBacks,
							  &kCFTypeDictionaryValueCallBacks)
				     : NULL;
	if (attrs)
		SecCodeCopyGuestWithAttributes(NULL, attrs, kSecCSDefaultFlags, &code);
	if (attrs)
		CFRelease(attrs);
	if (data)
		CFRelease(data);
	return code;
}

static void copy_string(CFStringRef s, char *dst, size_t size)
{
	dst[0] = '\0';
	if (s && !CFStringGetCString(s, dst, (CFIndex)size, kCFStringEncodingUTF8))
		dst[0] = '\0';
}

static bool satisfies(SecCodeRef code, SecRequirementRef r)
{
	return r && SecCodeCheckValidity(code, kSecCSDefaultFlags, r) == errSecSuccess;
}

static void inspect_code(SecCodeRef code, frame_request_t *r)
{
	r->app.anchor = satisfies(code, req_apple)          ? FRAME_ANCHOR_APPLE
			: satisfies(code, req_app_store)    ? FRAME_ANCHOR_APP_STORE
			: satisfies(code, req_developer_id) ? FRAME_ANCHOR_DEVELOPER_ID
							    : FRAME_ANCHOR_UNSIGNED;
	SecStaticCodeRef static_code = NULL;
	CFDictionaryRef info = NULL;
	if (SecCodeCopyStaticCode(code, kSecCSDefaultFlags, &static_code) == errSecSuccess &&
	    SecCodeCopySigningInformation(static_code, kSecCSSigningInformation, &info) == errSecSuccess && info) {
		copy_string(CFDictionaryGetValue(info, kSecCodeInfoIdentifier), r->app.signing_id, sizeof r->app.signing_id);
		copy_string(CFDictionaryGetValue(info, kSecCodeInfoTeamIdentifier), r->app.team_id, sizeof r->app.team_id);
		CFNumberRef flags = CFDictionaryGetValue(info, kSecCodeInfoFlags);
		uint32_t f = 0;
		if (flags && CFNumberGetValue(flags, kCFNumberSInt32Type, &f) && (f & kSecCodeSignatureAdhoc) &&
		    r->app.anchor == FRAME_ANCHOR_UNSIGNED)
			r->app.anchor = FRAME_ANCHOR_ADHOC;
	}
	CFURLRef url = NULL;
	if (static_code && SecCodeCopyPath(static_code, kSecCSDefaultFlags, &url) == errSecSuccess && url) {
		if (!CFURLGetFileSystemRepresentation(url, true, (UInt8 *)r->app.path, sizeof r->app.path))
			r->app.path[0] = '\0';
		CFRelease(url);
	}
	if (info)
		CFRelease(info);
	if (static_code)
		CFRelease(static_code);
}

bool identity_from_audit_token(const void *token, size_t len, frame_request_t *r)
{
	if (len != sizeof(audit_token_t))
		return false;
	pthread_once(&once, compile_requirements);
	audit_token_t at;
	memcpy(&at, token, sizeof at);
	r->app.pid = audit_token_to_pid(at);
	r->app.uid = audit_token_to_euid(at);
	unsigned char digest[CC_SHA256_DIGEST_LENGTH];
	CC_SHA256(token, (CC_LONG)len, digest);
	for (int i = 0; i < CC_SHA256_DIGEST_LENGTH; i++)
		snprintf(r->app.audit_token_sha256 + 2 * i, 3, "%02x", digest[i]);

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_cache; i++)
		if (!memcmp(cache[i].token, token, 32)) {
			cache[i].used = ++clock_;
			r->app = cache[i].app.app;
			pthread_mutex_unlock(&lock);
			return true;
		}
	pthread_mutex_unlock(&lock);

	SecCodeRef code = guest(token, len);
	if (!code)
		return false;
	frame_request_t found = *r;
	inspect_code(code, &found);
	CFRelease(code);
	if (!found.app.path[0])
		snprintf(found.app.path, sizeof found.app.path, "/unknown");

	pthread_mutex_lock(&lock);
	entry_t *slot = n_cache < IDENTITY_CACHE ? &cache[n_cache++] : &cache[0];
	for (size_t i = 0; n_cache == IDENTITY_CACHE && i < n_cache; i++)
		if (cache[i].used < slot->used)
			slot = &cache[i];
	memcpy(slot->token, token, 32);
	slot->used = ++clock_;
	slot->app = found;
	pthread_mutex_unlock(&lock);
	r->app = found.app;
	return true;
}

bool identity_satisfies(const void *token, size_t len, const char *text)
{
	/* one requirement in practice (the engine's): compiled once */
	static pthread_mutex_t req_lock = PTHREAD_MUTEX_INITIALIZER;
	static char req_text[512];
	static SecRequirementRef req;
	pthread_mutex_lock(&req_lock);
	if (!req || strcmp(req_text, text)) {
		if (req)
			CFRelease(req);
		req = requirement(text);
		snprintf(req_text, sizeof req_text, "%s", text);
	}
	SecRequirementRef r = req ? (SecRequirementRef)CFRetain(req) : NULL;
	pthread_mutex_unlock(&req_lock);
	SecCodeRef code = r ? guest(token, len) : NULL;
	bool ok = code && satisfies(code, r);
	if (code)
		CFRelease(code);
	if (r)
		CFRelease(r);
	return ok;
}
