/*
 * The system extension: a NETransparentProxyProvider that hands every
 * outbound TCP flow it may inspect to the dlpgate engine, and leaves the
 * rest to the OS. Objective-C only where the OS demands it; the decisions
 * are the shared C: sources/frame.c and sources/bypass.c (the protocol and
 * the static bypass table), identity.c (who opened the flow),
 * engine_reply.c (the engine's answer, read exactly), flowrelay.c (the
 * bytes of a flow, both ways) and watchdog.c (is anyone stuck).
 *
 *   handleNewFlow (serialised by the OS; an accepted flow can never be
 *   handed back, so it only decides and returns):
 *     UDP to port 443 -> accepted and refused, so QUIC falls back to TCP
 *     the watchdog says the engine or this extension is stuck -> the fail
 *       mode at once: open = NO (the OS keeps it), closed = refused
 *     the engine's own flows (by code requirement, never by pid) -> NO
 *     the static bypass table matches (Apple daemons, sensitive sites) -> NO
 *     otherwise -> YES, and a DLPFlow takes it on the flow queue:
 *       engine socket (non-blocking connect), header frame, reply:
 *         accept -> the flow is opened and relayed to the engine's socket
 *         bypass -> the extension connects to the destination itself
 *         reject -> refused
 *       engine unreachable, closing or garbling its reply -> the fail mode:
 *         open = connect to the destination ourselves, closed = refused.
 *
 * One serial queue ("flows") runs every flow's I/O, as one epoll loop does
 * in tests/tools/flowclient.c: per flow a DISPATCH_SOURCE_TYPE_READ and a
 * DISPATCH_SOURCE_TYPE_WRITE on its (non-blocking) socket, armed only
 * while flowrelay.c wants them, and the flow's completion handlers, which
 * hop onto the queue. Nothing on it blocks: no read loop per flow, no
 * semaphore, no blocking connect. The read source is suspended while
 * writeData is outstanding and the flow is not read again while the
 * socket holds back bytes (the write source is armed then): backpressure
 * both ways, one chunk in flight per direction.
 *
 * Connecting to the destination ourselves (bypass, fail open) is a
 * non-blocking BSD connect() finished by the write source, not an
 * nw_connection: the relay then has one kind of socket (a file
 * descriptor, engine or destination), one state machine and one set of
 * tests. The cost, known: nw_parameters with -[NEAppProxyFlow
 * setMetadata:] would let a later proxy or content filter see the app
 * behind the flow; over a BSD socket it sees this extension. The
 * destination is the numeric address the app connected to, so no
 * resolution, VPN-on-demand or Happy Eyeballs is lost. The system does
 * not hand a provider its own connections; should it, handleNewFlow
 * leaves flows of this process to the OS rather than loop.
 *
 * The control connection (the bypass table) is a short blocking exchange
 * on a queue of its own ("control"), bounded by socket timeouts; the
 * watchdog runs on a third ("watchdog") every WATCHDOG_TICK_MS: it posts
 * a heartbeat block to the flow queue, probes the engine with the control
 * request when a flow waits on it, and says when the state changes. While
 * not OK, the fail mode applies to new flows (handleNewFlow) and to flows
 * still waiting for the engine's reply; one log line per change.
 *
 * Sleep: sleepWithCompletionHandler only tells the watchdog (the sleep is
 * no stall) and returns at once; wake re-reads the providerConfiguration
 * and makes the watchdog probe the engine, which fetches the bypass table
 * again, so a restarted engine or a changed socket is noticed on wake.
 *
 * Logging: os_log subsystem "com.dlpgate.sysext", category "flow". What
 * comes from a flow (app path, signing id, host, address, port, pid) is
 * %{private}, and so are the engine's reasons (they may name the host);
 * our own words are %{public}.
 *   log stream --predicate 'subsystem == "com.dlpgate.sysext"'
 * shows each flow: "flow N: new", then its decision, then "finished".
 *
 * Configuration comes from the NETransparentProxyManager's
 * providerConfiguration: socket, fail_mode, engine_requirement.
 */
#import <Foundation/Foundation.h>
#import <Network/Network.h>
#import <NetworkExtension/NetworkExtension.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <os/lock.h>
#include <os/log.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "engine_reply.h"
#include "flowrelay.h"
#include "identity.h"
#include "sources/bypass.h"
#include "sources/frame.h"
#include "watchdog.h"

static os_log_t lg;

/* A flow waiting this long for the engine's reply while the engine answers
 * its probes is stuck on its own (three times the engine's default
 * upstream connect timeout, timeouts.connect_ms = 10 s): it is refused,
 * never passed through, so a slow destination cannot buy an uninspected
 * flow. */
#define HANDSHAKE_LIMIT_MS 30000
/* The control exchange (a probe or a table fetch): connect, send, read. */
#define CONTROL_TIMEOUT_MS 2000

/* Milliseconds of a clock that stops while the Mac sleeps, as the
 * watchdog's thresholds want: dispatch timers run on the same clock. */
static uint64_t now_ms(void)
{
	return clock_gettime_nsec_np(CLOCK_UPTIME_RAW) / 1000000;
}

static NSError *flow_error(NEAppProxyFlowError code)
{
	return [NSError errorWithDomain:NEAppProxyErrorDomain code:code userInfo:nil];
}

/* Non-blocking, close-on-exec, and no SIGPIPE on a write to a closed peer. */
static bool prepare_socket(int fd)
{
	int one = 1;
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 &&
	       setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) == 0;
}

/* The configuration, replaced whole (start, wake) and read from any queue. */
@interface DLPConfig : NSObject
@property(readonly) NSString *socketPath;
@property(readonly) BOOL failOpen;
@property(readonly) NSString *engineRequirement;
- (instancetype)initWithProviderConfiguration:(NSDictionary *)cfg;
@end

@implementation DLPConfig
- (instancetype)initWithProviderConfiguration:(NSDictionary *)cfg
{
	if ((self = [super init])) {
		id s = cfg[@"socket"], m = cfg[@"fail_mode"], q = cfg[@"engine_requirement"];
		_socketPath = [s isKindOfClass:[NSString class]] ? s : @"/var/run/dlpgate/sysext.sock";
		/* open unless configured otherwise (dlpgate-app's default); a value
		 * that is neither word is a mistake, and a mistake must not weaken
		 * the policy: closed */
		_failOpen = m == nil || [m isEqual:@"open"];
		if (m && !_failOpen && ![m isEqual:@"closed"])
			os_log_error(lg, "fail_mode %{public}@ is neither open nor closed: failing closed", m);
		/* Whose flows are the engine's own and left to the OS: an identifier
		 * alone would let any Developer ID program named com.dlpgate.engine
		 * walk past inspection, so the default pins our team (the build
		 * writes it into Info.plist's DLPEngineRequirement). */
		id built_in = NSBundle.mainBundle.infoDictionary[@"DLPEngineRequirement"];
		_engineRequirement = [q isKindOfClass:[NSString class]]		 ? q
				     : [built_in isKindOfClass:[NSString class]] ? built_in
										 : @"never";
		if ([_engineRequirement isEqual:@"never"])
			os_log_error(lg, "no engine requirement (Info.plist DLPEngineRequirement): the engine's "
					 "own flows cannot be recognised");
	}
	return self;
}
@end

@class DLPFlow;

@interface DLPTransparentProxyProvider : NETransparentProxyProvider
@property(atomic, strong) DLPConfig *config;
@property(readonly) dispatch_queue_t flowQueue;
- (void)engineAsked;
- (void)engineAnswered:(const char *)policyVersion;
- (void)engineUnanswered;
- (void)engineUnreachable;
- (void)flowEnded:(DLPFlow *)f;
@end

/* ---- one flow: the engine's handshake, then the relay ------------------ */

typedef enum {
	PHASE_CONNECT_ENGINE, /* connect() in progress: write source */
	PHASE_SEND_HEADER,    /* the header frame: write source while refused */
	PHASE_READ_REPLY,     /* the reply frame: read source */
	PHASE_CONNECT_DIRECT, /* a pass-through's connect() in progress: write source */
	PHASE_OPENING,        /* openWithLocalEndpoint outstanding */
	PHASE_RELAY,          /* flowrelay.c has it */
	PHASE_DONE,
} phase_t;

@interface DLPFlow : NSObject
- (instancetype)initWithFlow:(NEAppProxyTCPFlow *)tcp request:(const frame_request_t *)r id:(uint64_t)n
		    provider:(DLPTransparentProxyProvider *)p;
- (void)start;
- (BOOL)waitingForEngine;
- (uint64_t)startedMs;
- (uint64_t)flowId;
- (void)failOver:(const char *)why;
- (void)abort;
@end

@implementation DLPFlow {
	__weak DLPTransparentProxyProvider *_provider;
	NEAppProxyTCPFlow *_tcp;
	frame_request_t _r;
	uint64_t _id, _started;
	phase_t _phase;
	BOOL _asked; /* counted by the watchdog as waiting for a reply */
	BOOL _direct; /* relaying to the destination, not the engine */
	int _fd;
	dispatch_source_t _rd, _wr;
	BOOL _rdOn, _wrOn;
	NSData *_out; /* the header frame */
	size_t _outOff;
	engine_reply_t *_reply; /* 16 KiB, only while the reply is read */
	flowrelay_t *_relay;
}

- (instancetype)initWithFlow:(NEAppProxyTCPFlow *)tcp request:(const frame_request_t *)r id:(uint64_t)n
		    provider:(DLPTransparentProxyProvider *)p
{
	if ((self = [super init])) {
		_provider = p;
		_tcp = tcp;
		_r = *r;
		_id = n;
		_fd = -1;
		_phase = PHASE_CONNECT_ENGINE; /* before start: a failure there fails over */
		_started = now_ms();
	}
	return self;
}

- (void)dealloc
{
	/* every path to PHASE_DONE dropped the socket; a flow let go of in
	 * any other phase (the provider torn down) must not release suspended
	 * sources, which libdispatch treats as a crash */
	if (_rd)
		[self dropSocket];
	/* freed here, after the last completion handler that could reach it */
	flowrelay_free(_relay);
	free(_reply);
}

- (uint64_t)startedMs
{
	return _started;
}

- (uint64_t)flowId
{
	return _id;
}

- (BOOL)waitingForEngine
{
	return _phase == PHASE_CONNECT_ENGINE || _phase == PHASE_SEND_HEADER || _phase == PHASE_READ_REPLY;
}

/* ---- the socket's two dispatch sources ---- */

- (void)setRead:(BOOL)on
{
	if (!_rd || _rdOn == on)
		return;
	_rdOn = on;
	if (on)
		dispatch_resume(_rd); /* the first resume activates it */
	else
		dispatch_suspend(_rd);
}

- (void)setWrite:(BOOL)on
{
	if (!_wr || _wrOn == on)
		return;
	_wrOn = on;
	if (on)
		dispatch_resume(_wr);
	else
		dispatch_suspend(_wr);
}

/* Sources for _fd, both disarmed; their events go to onReadable/onWritable. */
- (void)watchSocket
{
	dispatch_queue_t q = _provider.flowQueue;
	_rd = dispatch_source_create(DISPATCH_SOURCE_TYPE_READ, (uintptr_t)_fd, 0, q);
	_wr = dispatch_source_create(DISPATCH_SOURCE_TYPE_WRITE, (uintptr_t)_fd, 0, q);
	_rdOn = _wrOn = NO;
	__weak DLPFlow *weak = self;
	dispatch_source_set_event_handler(_rd, ^{
		[weak onReadable];
	});
	dispatch_source_set_event_handler(_wr, ^{
		[weak onWritable];
	});
	/* the descriptor is closed once neither source can touch it (Apple's
	 * rule for sources: close in the cancel handler, after both) */
	int fd = _fd;
	__block int left = 2;
	void (^closeFd)(void) = ^{
		if (--left == 0)
			close(fd);
	};
	dispatch_source_set_cancel_handler(_rd, closeFd);
	dispatch_source_set_cancel_handler(_wr, closeFd);
}

/* Cancels both sources; the cancel handlers close the socket. A suspended
 * (or never activated) source is resumed after cancel: its cancel handler
 * only runs once it is, and releasing a suspended source is a crash. */
- (void)dropSocket
{
	if (_rd) {
		dispatch_source_cancel(_rd);
		dispatch_source_cancel(_wr);
		if (!_rdOn)
			dispatch_resume(_rd);
		if (!_wrOn)
			dispatch_resume(_wr);
		_rd = _wr = nil;
	} else if (_fd >= 0) {
		close(_fd);
	}
	_fd = -1;
	_rdOn = _wrOn = NO;
}

- (void)onReadable
{
	if (_phase == PHASE_READ_REPLY)
		[self readReply];
	else if (_phase == PHASE_RELAY)
		flowrelay_sock_readable(_relay);
}

- (void)onWritable
{
	switch (_phase) {
	case PHASE_CONNECT_ENGINE:
	case PHASE_CONNECT_DIRECT:
		[self connected];
		return;
	case PHASE_SEND_HEADER:
		[self sendHeader];
		return;
	case PHASE_RELAY:
		flowrelay_sock_writable(_relay);
		return;
	default:
		[self setWrite:NO];
		return;
	}
}

/* ---- the engine's handshake ---- */

- (void)start
{
	DLPConfig *cfg = _provider.config;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlcpy(sun.sun_path, cfg.socketPath.fileSystemRepresentation, sizeof sun.sun_path) >= sizeof sun.sun_path) {
		[self failOver:"the engine's socket path is too long"];
		return;
	}
	_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (_fd < 0 || !prepare_socket(_fd)) {
		[self failOver:"no socket for the engine"];
		return;
	}
	[self watchSocket];
	_phase = PHASE_CONNECT_ENGINE;
	if (connect(_fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
		[self connected];
	} else if (errno == EINPROGRESS) {
		[self setWrite:YES];
	} else {
		[_provider engineUnreachable];
		[self failOver:"engine unreachable"];
	}
}

/* connect() finished, to the engine or to the destination. */
- (void)connected
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(_fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	[self setWrite:NO];
	if (_phase == PHASE_CONNECT_DIRECT) {
		if (err) {
			os_log(lg, "flow %llu: the destination refused the pass-through: %{public}s", _id, strerror(err));
			[self refuse:NEAppProxyFlowErrorHostUnreachable];
			return;
		}
		[self openAndRelay];
		return;
	}
	if (err) {
		[_provider engineUnreachable];
		[self failOver:"engine unreachable"];
		return;
	}
	bytebuf_t frame;
	bytebuf_init(&frame, 0);
	char why[200];
	if (!frame_request_encode(&_r, &frame, why, sizeof why)) {
		bytebuf_free(&frame);
		/* A field the protocol cannot carry (a path that is not UTF-8, say).
		 * Refused whatever the fail mode: the fail mode is for an engine
		 * that is away, and an app must not escape inspection by how it
		 * names itself. */
		os_log_error(lg, "flow %llu: refused: its header cannot be encoded: %{public}s", _id, why);
		[self refuse:NEAppProxyFlowErrorRefused];
		return;
	}
	_out = [NSData dataWithBytes:frame.data length:frame.len];
	bytebuf_free(&frame);
	_outOff = 0;
	_asked = YES;
	[_provider engineAsked];
	_phase = PHASE_SEND_HEADER;
	[self sendHeader];
}

- (void)sendHeader
{
	while (_outOff < _out.length) {
		ssize_t n = write(_fd, (const uint8_t *)_out.bytes + _outOff, _out.length - _outOff);
		if (n > 0) {
			_outOff += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			[self setWrite:YES]; /* a header is up to 16 KiB; the socket buffer may be 8 */
			return;
		} else {
			[self engineFailed:"the engine closed while the header was sent"];
			return;
		}
	}
	[self setWrite:NO];
	_out = nil;
	_reply = malloc(sizeof *_reply);
	if (!_reply) {
		[self engineFailed:"out of memory for the engine's reply"];
		return;
	}
	engine_reply_init(_reply);
	_phase = PHASE_READ_REPLY;
	[self setRead:YES];
}

/* engine_reply.c reads exactly the frame, never a byte past it: those
 * are the flow's, and the relay reads them next. */
- (void)readReply
{
	frame_reply_t reply;
	char err[200];
	frame_status_t st = engine_reply_read(_reply, _fd, &reply, err, sizeof err);
	if (st == FRAME_NEED_MORE)
		return; /* the read source fires again */
	[self setRead:NO];
	free(_reply);
	_reply = NULL;
	if (st == FRAME_BAD) {
		[self engineFailed:err];
		return;
	}
	_asked = NO;
	[_provider engineAnswered:reply.policy_version];
	[self verdict:&reply];
}

- (void)verdict:(const frame_reply_t *)reply
{
	switch (reply->verdict) {
	case FRAME_ACCEPT:
		os_log(lg, "flow %llu: engine accept: relaying to the engine", _id);
		[self openAndRelay];
		return;
	case FRAME_BYPASS:
		/* the engine's reasons can name the flow's host: private */
		os_log(lg, "flow %llu: engine bypass (%{private}s): passing it through", _id, reply->reason);
		[self passThrough];
		return;
	case FRAME_REJECT:
		os_log(lg, "flow %llu: engine reject (%{private}s)", _id, reply->reason);
		[self refuse:NEAppProxyFlowErrorRefused];
		return;
	}
}

/* The engine connection failed after it was made. */
- (void)engineFailed:(const char *)why
{
	if (_asked) {
		_asked = NO;
		[_provider engineUnanswered];
	}
	[self failOver:why];
}

/* The configured fail mode for a flow the engine could not take. */
- (void)failOver:(const char *)why
{
	if (_phase == PHASE_DONE || ![self waitingForEngine])
		return;
	if (_asked) {
		_asked = NO;
		[_provider engineUnanswered];
	}
	if (_provider.config.failOpen) {
		os_log(lg, "flow %llu: fail open (%{public}s): passing it through", _id, why);
		[self passThrough];
	} else {
		os_log(lg, "flow %llu: fail closed (%{public}s): refusing it", _id, why);
		[self refuse:NEAppProxyFlowErrorRefused];
	}
}

/* The destination, directly: a non-blocking connect the write source finishes. */
- (void)passThrough
{
	[self dropSocket];
	_direct = YES;
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int family;
	if (strchr(_r.dst_ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(_r.dst_port);
		a->sin6_len = sizeof *a;
		family = inet_pton(AF_INET6, _r.dst_ip, &a->sin6_addr) == 1 ? AF_INET6 : -1;
		len = sizeof *a;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(_r.dst_port);
		a->sin_len = sizeof *a;
		family = inet_pton(AF_INET, _r.dst_ip, &a->sin_addr) == 1 ? AF_INET : -1;
		len = sizeof *a;
	}
	if (family < 0) {
		os_log_error(lg, "flow %llu: no numeric destination to pass it through to", _id);
		[self refuse:NEAppProxyFlowErrorHostUnreachable];
		return;
	}
	_fd = socket(family, SOCK_STREAM, 0);
	if (_fd < 0 || !prepare_socket(_fd)) {
		os_log_error(lg, "flow %llu: no socket to pass it through: %{public}s", _id, strerror(errno));
		[self refuse:NEAppProxyFlowErrorInternal];
		return;
	}
	[self watchSocket];
	_phase = PHASE_CONNECT_DIRECT;
	if (connect(_fd, (struct sockaddr *)&ss, len) == 0) {
		[self openAndRelay];
	} else if (errno == EINPROGRESS) {
		[self setWrite:YES];
	} else {
		os_log(lg, "flow %llu: the destination refused the pass-through: %{public}s", _id, strerror(errno));
		[self refuse:NEAppProxyFlowErrorHostUnreachable];
	}
}

/* Opened, then refused: the app sees its connection fail, not a clean
 * end of an empty response. */
- (void)refuse:(NEAppProxyFlowError)code
{
	[self dropSocket];
	_phase = PHASE_DONE;
	NEAppProxyTCPFlow *tcp = _tcp;
	uint64_t n = _id;
	[tcp openWithLocalEndpoint:nil completionHandler:^(NSError *e) {
		if (e)
			os_log_debug(lg, "flow %llu: open before refusing: %{public}@", n, e);
		NSError *refused = flow_error(code);
		[tcp closeReadWithError:refused];
		[tcp closeWriteWithError:refused];
	}];
	[_provider flowEnded:self];
}

- (void)abort
{
	if (_phase == PHASE_RELAY) {
		flowrelay_abort(_relay);
	} else if (_phase == PHASE_OPENING) {
		/* opened: closes the flow when the open completes */
		[self dropSocket];
		_phase = PHASE_DONE;
		[_provider flowEnded:self];
	} else if (_phase != PHASE_DONE) {
		if (_asked) {
			_asked = NO;
			[_provider engineUnanswered];
		}
		[self refuse:NEAppProxyFlowErrorAborted];
	}
}

/* ---- the relay: flowrelay.c decides, these do the I/O ---- */

static void io_flow_read(void *ctx)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	[f flowRead];
}

static void io_flow_write(void *ctx, const uint8_t *p, size_t n)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	[f flowWrite:[NSData dataWithBytes:p length:n]];
}

static void io_flow_close_read(void *ctx, bool error)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	[f closeFlowRead:error];
}

static void io_flow_close_write(void *ctx, bool error)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	[f closeFlowWrite:error];
}

static ssize_t io_sock_read(void *ctx, uint8_t *buf, size_t cap)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	return flowrelay_fd_read([f fd], buf, cap);
}

static ssize_t io_sock_write(void *ctx, const uint8_t *p, size_t len)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	return flowrelay_fd_write([f fd], p, len);
}

static void io_sock_shutdown_write(void *ctx)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	shutdown([f fd], SHUT_WR);
}

static void io_sock_read_events(void *ctx, bool on)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	[f setRead:on];
}

static void io_sock_write_events(void *ctx, bool on)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	[f setWrite:on];
}

static void io_finished(void *ctx, flowrelay_end_t end, const flowrelay_counts_t *c)
{
	DLPFlow *f = (__bridge DLPFlow *)ctx;
	[f relayFinished:end counts:c];
}

static const flowrelay_io_t relay_io = {
	.flow_read = io_flow_read,
	.flow_write = io_flow_write,
	.flow_close_read = io_flow_close_read,
	.flow_close_write = io_flow_close_write,
	.sock_read = io_sock_read,
	.sock_write = io_sock_write,
	.sock_shutdown_write = io_sock_shutdown_write,
	.sock_read_events = io_sock_read_events,
	.sock_write_events = io_sock_write_events,
	.finished = io_finished,
};

- (int)fd
{
	return _fd;
}

- (void)openAndRelay
{
	_phase = PHASE_OPENING;
	dispatch_queue_t q = _provider.flowQueue;
	[_tcp openWithLocalEndpoint:nil completionHandler:^(NSError *e) {
		dispatch_async(q, ^{
			[self opened:e];
		});
	}];
}

- (void)opened:(NSError *)e
{
	if (_phase != PHASE_OPENING) { /* aborted meanwhile */
		if (!e) {
			[self closeFlowRead:true];
			[self closeFlowWrite:true];
		}
		return;
	}
	if (e) {
		os_log_error(lg, "flow %llu: the flow did not open: %{public}@", _id, e);
		[self dropSocket];
		_phase = PHASE_DONE;
		[_provider flowEnded:self];
		return;
	}
	_relay = flowrelay_new(&relay_io, (__bridge void *)self);
	if (!_relay) { /* already open: closed with an error, not opened again */
		os_log_error(lg, "flow %llu: out of memory for its relay: closed", _id);
		[self closeFlowRead:true];
		[self closeFlowWrite:true];
		[self dropSocket];
		_phase = PHASE_DONE;
		[_provider flowEnded:self];
		return;
	}
	_phase = PHASE_RELAY;
	flowrelay_start(_relay);
}

/* The flow's completion handlers run on the NE's queue: each hops onto
 * the flow queue, where the relay lives. */
- (void)flowRead
{
	dispatch_queue_t q = _provider.flowQueue;
	[_tcp readDataWithCompletionHandler:^(NSData *data, NSError *e) {
		dispatch_async(q, ^{
			flowrelay_flow_read_done(self->_relay, data.bytes, data.length, e != nil);
		});
	}];
}

- (void)flowWrite:(NSData *)data
{
	dispatch_queue_t q = _provider.flowQueue;
	[_tcp writeData:data withCompletionHandler:^(NSError *e) {
		dispatch_async(q, ^{
			flowrelay_flow_write_done(self->_relay, e != nil);
		});
	}];
}

- (void)closeFlowRead:(bool)error
{
	[_tcp closeReadWithError:error ? flow_error(NEAppProxyFlowErrorAborted) : nil];
}

- (void)closeFlowWrite:(bool)error
{
	[_tcp closeWriteWithError:error ? flow_error(NEAppProxyFlowErrorAborted) : nil];
}

- (void)relayFinished:(flowrelay_end_t)end counts:(const flowrelay_counts_t *)c
{
	os_log(lg, "flow %llu: finished (%{public}s) %{public}s: %llu bytes sent, %llu bytes received", _id,
	       flowrelay_end_name(end), _direct ? "direct" : "via the engine", (unsigned long long)c->flow_to_sock,
	       (unsigned long long)c->sock_to_flow);
	[self dropSocket];
	_phase = PHASE_DONE;
	[_provider flowEnded:self];
}

@end

/* ---- the provider -------------------------------------------------------- */

@implementation DLPTransparentProxyProvider {
	os_unfair_lock _lock; /* _table, _fetching, _wd */
	bypass_table_t _table;
	BOOL _fetching;
	watchdog_t _wd;
	dispatch_queue_t _control;  /* the bypass table: short blocking exchanges */
	dispatch_queue_t _watchq;
	dispatch_source_t _timer;
	NSMutableSet<DLPFlow *> *_live; /* on the flow queue only */
	uint64_t _nextFlow;             /* handleNewFlow is serialised */
}

- (void)startProxyWithOptions:(NSDictionary *)options completionHandler:(void (^)(NSError *))done
{
	(void)options; /* started by the system, never with options */
	lg = os_log_create("com.dlpgate.sysext", "flow");
	_lock = OS_UNFAIR_LOCK_INIT;
	[self loadConfiguration];
	_flowQueue = dispatch_queue_create("com.dlpgate.sysext.flows", DISPATCH_QUEUE_SERIAL);
	_control = dispatch_queue_create("com.dlpgate.sysext.control", DISPATCH_QUEUE_SERIAL);
	_watchq = dispatch_queue_create("com.dlpgate.sysext.watchdog", DISPATCH_QUEUE_SERIAL);
	_live = [NSMutableSet new];
	watchdog_init(&_wd, now_ms());
	[self fetchTableSoon];
	[self startWatchdog];

	NENetworkRule *tcp = [[NENetworkRule alloc] initWithRemoteNetwork:nil remotePrefix:0 localNetwork:nil
							      localPrefix:0 protocol:NENetworkRuleProtocolTCP
							      direction:NETrafficDirectionOutbound];
	NENetworkRule *quic = [[NENetworkRule alloc]
	    initWithRemoteNetwork:[NWHostEndpoint endpointWithHostname:@"0.0.0.0" port:@"443"] remotePrefix:0
		     localNetwork:nil localPrefix:0 protocol:NENetworkRuleProtocolUDP
			direction:NETrafficDirectionOutbound];
	NETransparentProxyNetworkSettings *s =
	    [[NETransparentProxyNetworkSettings alloc] initWithTunnelRemoteAddress:@"127.0.0.1"];
	s.includedNetworkRules = @[ tcp, quic ];
	DLPConfig *cfg = self.config;
	[self setTunnelNetworkSettings:s completionHandler:^(NSError *e) {
		if (e)
			os_log_error(lg, "cannot apply network settings: %{public}@", e);
		else
			os_log(lg, "started: engine socket %{public}s, fail mode %{public}s", cfg.socketPath.UTF8String,
			       cfg.failOpen ? "open" : "closed");
		done(e);
	}];
}

- (void)stopProxyWithReason:(NEProviderStopReason)reason completionHandler:(void (^)(void))done
{
	os_log(lg, "stopping (reason %ld)", (long)reason);
	if (_timer) {
		dispatch_source_cancel(_timer);
		_timer = nil;
	}
	dispatch_async(_flowQueue, ^{
		for (DLPFlow *f in [self->_live copy])
			[f abort];
		os_unfair_lock_lock(&self->_lock);
		bypass_table_free(&self->_table);
		os_unfair_lock_unlock(&self->_lock);
		done();
	});
}

- (void)loadConfiguration
{
	NSDictionary *cfg = ((NETunnelProviderProtocol *)self.protocolConfiguration).providerConfiguration;
	self.config = [[DLPConfig alloc] initWithProviderConfiguration:cfg];
}

/* ---- sleep and wake: never block here ---- */

- (void)sleepWithCompletionHandler:(void (^)(void))completionHandler
{
	os_unfair_lock_lock(&_lock);
	watchdog_sleep(&_wd);
	os_unfair_lock_unlock(&_lock);
	os_log(lg, "sleep");
	completionHandler();
}

- (void)wake
{
	[self loadConfiguration];
	os_unfair_lock_lock(&_lock);
	watchdog_wake(&_wd, now_ms()); /* probes the engine (and refetches the table) at the next tick */
	os_unfair_lock_unlock(&_lock);
	os_log(lg, "wake: engine socket %{public}s, fail mode %{public}s: re-checking the engine",
	       self.config.socketPath.UTF8String, self.config.failOpen ? "open" : "closed");
}

/* ---- the watchdog ---- */

- (void)startWatchdog
{
	_timer = dispatch_source_create(DISPATCH_SOURCE_TYPE_TIMER, 0, 0, _watchq);
	dispatch_source_set_timer(_timer, dispatch_time(DISPATCH_TIME_NOW, WATCHDOG_TICK_MS * NSEC_PER_MSEC),
				  WATCHDOG_TICK_MS * NSEC_PER_MSEC, 25 * NSEC_PER_MSEC);
	__weak DLPTransparentProxyProvider *weak = self;
	dispatch_source_set_event_handler(_timer, ^{
		[weak tick];
	});
	dispatch_activate(_timer);
}

- (void)tick
{
	os_unfair_lock_lock(&_lock);
	watchdog_tick_t t = watchdog_tick(&_wd, now_ms());
	os_unfair_lock_unlock(&_lock);
	if (t.changed) {
		if (t.state == WATCHDOG_OK)
			os_log(lg, "watchdog: recovered from %{public}s", watchdog_state_name(t.was));
		else
			os_log_error(lg, "watchdog: %{public}s: fail %{public}s applies to new and waiting flows",
				     watchdog_state_name(t.state), self.config.failOpen ? "open" : "closed");
	}
	if (t.changed && t.state != WATCHDOG_OK) {
		const char *why = watchdog_state_name(t.state);
		dispatch_async(_flowQueue, ^{
			for (DLPFlow *f in [self->_live copy])
				if ([f waitingForEngine])
					[f failOver:why];
		});
	}
	if (t.send_heartbeat)
		dispatch_async(_flowQueue, ^{
			[self heartbeat];
		});
	if (t.probe) {
		unsigned probe = t.probe_id;
		dispatch_async(_control, ^{
			/* quiet: a probe failing each second while the engine is away
			 * would be a log line each second; the watchdog logs the change */
			watchdog_probe_t result = [self fetchTableLogging:NO];
			os_unfair_lock_lock(&self->_lock);
			watchdog_probe_done(&self->_wd, now_ms(), probe, result);
			os_unfair_lock_unlock(&self->_lock);
		});
	}
}

/* On the flow queue: it turned over. Flows stuck on their own are ended. */
- (void)heartbeat
{
	os_unfair_lock_lock(&_lock);
	watchdog_heartbeat_ran(&_wd);
	os_unfair_lock_unlock(&_lock);
	uint64_t now = now_ms();
	for (DLPFlow *f in [_live copy])
		if ([f waitingForEngine] && now - [f startedMs] >= HANDSHAKE_LIMIT_MS) {
			os_log(lg, "flow %llu: no reply from the engine within %d s: refused", [f flowId],
			       HANDSHAKE_LIMIT_MS / 1000);
			[f abort];
		}
}

- (watchdog_state_t)watchdogState
{
	os_unfair_lock_lock(&_lock);
	watchdog_state_t s = watchdog_state(&_wd);
	os_unfair_lock_unlock(&_lock);
	return s;
}

- (void)engineAsked
{
	os_unfair_lock_lock(&_lock);
	watchdog_engine_asked(&_wd, now_ms());
	os_unfair_lock_unlock(&_lock);
}

- (void)engineAnswered:(const char *)policyVersion
{
	os_unfair_lock_lock(&_lock);
	watchdog_engine_answered(&_wd, now_ms());
	bool stale = strcmp(policyVersion, _table.policy_version) != 0;
	os_unfair_lock_unlock(&_lock);
	if (stale)
		[self fetchTableSoon];
}

- (void)engineUnanswered
{
	os_unfair_lock_lock(&_lock);
	watchdog_engine_unanswered(&_wd);
	os_unfair_lock_unlock(&_lock);
}

- (void)engineUnreachable
{
	os_unfair_lock_lock(&_lock);
	watchdog_engine_unreachable(&_wd);
	os_unfair_lock_unlock(&_lock);
}

- (void)flowEnded:(DLPFlow *)f
{
	[_live removeObject:f];
}

/* ---- the bypass table, on the control queue ---- */

/* One fetch queued at a time, however many replies name a new policy. */
- (void)fetchTableSoon
{
	os_unfair_lock_lock(&_lock);
	BOOL queued = _fetching;
	_fetching = YES;
	os_unfair_lock_unlock(&_lock);
	if (queued)
		return;
	dispatch_async(_control, ^{
		os_unfair_lock_lock(&self->_lock);
		self->_fetching = NO;
		os_unfair_lock_unlock(&self->_lock);
		[self fetchTableLogging:YES];
	});
}

/* Connects within CONTROL_TIMEOUT_MS or says why not (-1, errno set). */
static int connect_control(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlcpy(sun.sun_path, path, sizeof sun.sun_path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || !prepare_socket(fd)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int err = 0;
		socklen_t len = sizeof err;
		if (errno != EINPROGRESS || poll(&p, 1, CONTROL_TIMEOUT_MS) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
			int saved = err ? err : errno == EINPROGRESS ? ETIMEDOUT : errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	/* bypass_table_fetch reads and writes blocking: bounded by timeouts */
	struct timeval tv = {.tv_sec = CONTROL_TIMEOUT_MS / 1000, .tv_usec = (CONTROL_TIMEOUT_MS % 1000) * 1000};
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* The engine's table over a control connection; it is also the watchdog's
 * probe: the engine answers it itself, with no upstream in the way. */
- (watchdog_probe_t)fetchTableLogging:(BOOL)logFailure
{
	int fd = connect_control(self.config.socketPath.fileSystemRepresentation);
	if (fd < 0) {
		if (logFailure)
			os_log_error(lg, "no bypass table: engine unreachable (%{public}s)", strerror(errno));
		return WATCHDOG_PROBE_UNREACHABLE;
	}
	bypass_table_t t;
	char err[200];
	bool ok = bypass_table_fetch(fd, &t, err, sizeof err);
	close(fd);
	if (!ok) {
		if (logFailure)
			os_log_error(lg, "no bypass table: %{public}s", err);
		return WATCHDOG_PROBE_NO_ANSWER;
	}
	os_unfair_lock_lock(&_lock);
	bool changed = strcmp(t.policy_version, _table.policy_version) != 0;
	bypass_table_free(&_table);
	_table = t;
	os_unfair_lock_unlock(&_lock);
	if (changed)
		os_log(lg, "bypass table for policy %{public}s: %zu hosts, %zu signing ids excepted", t.policy_version,
		       t.n_hosts, t.n_except);
	return WATCHDOG_PROBE_ANSWERED;
}

/* ---- handleNewFlow: serialised, so it decides and returns ---- */

- (BOOL)refuseNow:(NEAppProxyFlow *)flow
{
	[flow openWithLocalEndpoint:nil completionHandler:^(NSError *e) {
		if (e)
			os_log_debug(lg, "open before refusing: %{public}@", e);
		NSError *refused = flow_error(NEAppProxyFlowErrorRefused);
		[flow closeReadWithError:refused];
		[flow closeWriteWithError:refused];
	}];
	return YES;
}

- (BOOL)handleNewFlow:(NEAppProxyFlow *)flow
{
	uint64_t n = ++_nextFlow;
	if ([flow isKindOfClass:[NEAppProxyUDPFlow class]]) {
		/* only UDP 443 is included: refuse it so QUIC falls back to TCP */
		os_log(lg, "flow %llu: new UDP flow to port 443: refused so QUIC falls back to TCP", n);
		return [self refuseNow:flow];
	}
	if (![flow isKindOfClass:[NEAppProxyTCPFlow class]]) {
		os_log(lg, "flow %llu: new flow of an unknown kind: left to the OS", n);
		return NO;
	}
	NEAppProxyTCPFlow *tcp = (NEAppProxyTCPFlow *)flow;
	NWHostEndpoint *remote = (NWHostEndpoint *)tcp.remoteEndpoint;
	os_log(lg, "flow %llu: new TCP flow to %{private}s port %{private}s host %{private}s", n,
	       remote.hostname.UTF8String ?: "?", remote.port.UTF8String ?: "?",
	       tcp.remoteHostname.UTF8String ?: "-");

	DLPConfig *cfg = self.config;
	watchdog_state_t wd = [self watchdogState];
	if (wd != WATCHDOG_OK) {
		/* the watchdog logged the change once; this is the flow's own path */
		os_log_debug(lg, "flow %llu: fail %{public}s (%{public}s)", n, cfg.failOpen ? "open" : "closed",
			     watchdog_state_name(wd));
		return cfg.failOpen ? NO : [self refuseNow:flow];
	}

	NSData *token = flow.metaData.sourceAppAuditToken;
	if (token.length == 32 && identity_satisfies(token.bytes, token.length, cfg.engineRequirement.UTF8String)) {
		os_log(lg, "flow %llu: left to the OS: the engine's own connection", n);
		return NO;
	}
	frame_request_t r;
	memset(&r, 0, sizeof r);
	snprintf(r.extension_version, sizeof r.extension_version, "%s",
		 [[NSBundle mainBundle].infoDictionary[@"CFBundleShortVersionString"] UTF8String] ?: "0");
	snprintf(r.flow_id, sizeof r.flow_id, "%llu", (unsigned long long)n);
	snprintf(r.dst_ip, sizeof r.dst_ip, "%s", remote.hostname.UTF8String ?: "");
	r.dst_port = (uint16_t)remote.port.intValue;
	if (tcp.remoteHostname)
		snprintf(r.hostname, sizeof r.hostname, "%s", tcp.remoteHostname.UTF8String);
	if (token.length != 32 || !identity_from_audit_token(token.bytes, token.length, &r)) {
		os_log(lg, "flow %llu: left to the OS: the process is gone, nothing to attribute", n);
		return NO;
	}
	if (r.app.pid == getpid()) {
		/* our own pass-through connect: the system should never hand it
		 * back, and if it did, claiming it would loop. The pid of the
		 * live process holding the token is exact here. */
		os_log(lg, "flow %llu: left to the OS: the extension's own connection", n);
		return NO;
	}

	char why[300];
	bool leave;
	os_unfair_lock_lock(&_lock);
	leave = bypass_table_match(&_table, r.app.anchor, r.app.signing_id, r.hostname, why, sizeof why);
	os_unfair_lock_unlock(&_lock);
	if (leave) {
		/* why names the signing id or the host: the flow's, so private */
		os_log(lg, "flow %llu: left to the OS: static bypass (%{private}s)", n, why);
		return NO;
	}
	os_log(lg, "flow %llu: %{private}s (%{private}s, %{public}s, pid %{private}lld) to the engine", n, r.app.path,
	       r.app.signing_id[0] ? r.app.signing_id : "unsigned", frame_anchor_name(r.app.anchor),
	       (long long)r.app.pid);
	DLPFlow *f = [[DLPFlow alloc] initWithFlow:tcp request:&r id:n provider:self];
	dispatch_async(_flowQueue, ^{
		[self->_live addObject:f];
		[f start];
	});
	return YES;
}

@end
