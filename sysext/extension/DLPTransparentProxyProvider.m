/*
 * The system extension: a NETransparentProxyProvider that hands every
 * outbound TCP flow it may inspect to the dlpgate engine, and leaves the
 * rest to the OS. Objective-C only where the OS demands it; the decisions
 * are the shared C (sources/frame.c, sources/bypass.c, identity.c).
 *
 *   handleNewFlow (serialised; an accepted flow can never be handed back):
 *     UDP to port 443  -> accepted and closed at once, so QUIC falls back to TCP
 *     the engine's own flows (by code requirement, never by pid) -> NO
 *     the static bypass table matches (Apple daemons, sensitive sites) -> NO
 *     otherwise -> YES, and on a queue of its own: one unix-socket
 *       connection to the engine, the header frame, the engine's reply:
 *         accept -> bytes both ways with half-close
 *         bypass -> the extension relays the flow to its destination itself
 *         reject -> closed
 *     engine unreachable -> fail_mode "open" (relay it ourselves) or
 *       "closed" (close it), with a log line either way.
 *
 * Configuration comes from the NETransparentProxyManager's
 * providerConfiguration: socket, fail_mode, engine_requirement.
 */
#import <Foundation/Foundation.h>
#import <Network/Network.h>
#import <NetworkExtension/NetworkExtension.h>
#include <arpa/inet.h>
#include <os/log.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "identity.h"
#include "sources/bypass.h"
#include "sources/frame.h"

static os_log_t lg;

@interface DLPTransparentProxyProvider : NETransparentProxyProvider
@end

@implementation DLPTransparentProxyProvider {
	NSString *_socketPath;
	BOOL _failOpen;
	NSString *_engineRequirement;
	bypass_table_t _table;        /* under @synchronized(self) */
	dispatch_queue_t _flows;      /* concurrent: one block per flow direction */
	uint64_t _nextFlow;
}

- (void)startProxyWithOptions:(NSDictionary *)options completionHandler:(void (^)(NSError *))done
{
	lg = os_log_create("com.dlpgate.sysext", "proxy");
	NSDictionary *cfg = ((NETunnelProviderProtocol *)self.protocolConfiguration).providerConfiguration;
	_socketPath = cfg[@"socket"] ?: @"/var/run/dlpgate/sysext.sock";
	_failOpen = ![cfg[@"fail_mode"] isEqual:@"closed"];
	_engineRequirement = cfg[@"engine_requirement"] ?: @"identifier \"com.dlpgate.engine\" and anchor apple generic";
	_flows = dispatch_queue_create("com.dlpgate.sysext.flows", DISPATCH_QUEUE_CONCURRENT);
	[self fetchTable];

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
	[self setTunnelNetworkSettings:s completionHandler:^(NSError *e) {
		if (e)
			os_log_error(lg, "cannot apply network settings: %{public}@", e);
		done(e);
	}];
}

- (void)stopProxyWithReason:(NEProviderStopReason)reason completionHandler:(void (^)(void))done
{
	@synchronized(self) {
		bypass_table_free(&_table);
	}
	done();
}

/* The engine's table, over a control connection; kept until a flow reply
 * names another policy version. */
- (void)fetchTable
{
	int fd = [self connectEngine];
	bypass_table_t t;
	char err[200] = "engine unreachable";
	if (fd >= 0 && bypass_table_fetch(fd, &t, err, sizeof err)) {
		@synchronized(self) {
			bypass_table_free(&_table);
			_table = t;
		}
		os_log(lg, "bypass table for policy %{public}s", t.policy_version);
	} else {
		os_log_error(lg, "no bypass table: %{public}s", err);
	}
	if (fd >= 0)
		close(fd);
}

- (int)connectEngine
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strlcpy(sun.sun_path, _socketPath.fileSystemRepresentation, sizeof sun.sun_path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

- (BOOL)handleNewFlow:(NEAppProxyFlow *)flow
{
	if ([flow isKindOfClass:[NEAppProxyUDPFlow class]]) {
		/* only UDP 443 is included: refuse it so QUIC falls back to TCP */
		[flow openWithLocalEndpoint:nil completionHandler:^(NSError *e) {
			NSError *refused = [NSError errorWithDomain:NEAppProxyErrorDomain code:NEAppProxyFlowErrorRefused
							   userInfo:nil];
			[flow closeReadWithError:refused];
			[flow closeWriteWithError:refused];
		}];
		return YES;
	}
	NEAppProxyTCPFlow *tcp = (NEAppProxyTCPFlow *)flow;
	NSData *token = flow.metaData.sourceAppAuditToken;
	if (token.length == 32 && identity_satisfies(token.bytes, token.length, _engineRequirement.UTF8String))
		return NO; /* the engine's own connections */

	frame_request_t r;
	memset(&r, 0, sizeof r);
	snprintf(r.extension_version, sizeof r.extension_version, "%s",
		 [[NSBundle mainBundle].infoDictionary[@"CFBundleShortVersionString"] UTF8String] ?: "0");
	snprintf(r.flow_id, sizeof r.flow_id, "%llu", (unsigned long long)++_nextFlow);
	NWHostEndpoint *remote = (NWHostEndpoint *)tcp.remoteEndpoint;
	snprintf(r.dst_ip, sizeof r.dst_ip, "%s", remote.hostname.UTF8String ?: "");
	r.dst_port = (uint16_t)remote.port.intValue;
	if (tcp.remoteHostname)
		snprintf(r.hostname, sizeof r.hostname, "%s", tcp.remoteHostname.UTF8String);
	if (token.length != 32 || !identity_from_audit_token(token.bytes, token.length, &r))
		return NO; /* the process is gone: nothing to attribute, let the OS have it */

	char why[300];
	bool leave;
	@synchronized(self) {
		leave = bypass_table_match(&_table, r.app.anchor, r.app.signing_id, r.hostname, why, sizeof why);
	}
	if (leave)
		return NO;
	dispatch_async(_flows, ^{
		[self relayFlow:tcp request:r];
	});
	return YES;
}

/* Off the serialised path: ask the engine, then relay. */
- (void)relayFlow:(NEAppProxyTCPFlow *)tcp request:(frame_request_t)r
{
	int fd = [self connectEngine];
	bytebuf_t frame;
	bytebuf_init(&frame, 0);
	char err[200];
	frame_reply_t reply = {.verdict = FRAME_REJECT};
	bool asked = fd >= 0 && frame_request_encode(&r, &frame, err, sizeof err) &&
		     write(fd, frame.data, frame.len) == (ssize_t)frame.len;
	bytebuf_free(&frame);
	uint8_t in[FRAME_PREFIX + FRAME_MAX_JSON];
	size_t have = 0, used = 0;
	frame_status_t st = FRAME_NEED_MORE;
	while (asked && st == FRAME_NEED_MORE && have < sizeof in) {
		ssize_t n = read(fd, in + have, 1); /* nothing past the reply is taken */
		if (n <= 0)
			break;
		have += (size_t)n;
		st = frame_reply_decode(in, have, &reply, &used, err, sizeof err);
	}
	if (st != FRAME_OK) {
		os_log_error(lg, "engine unreachable for %{public}s (%{public}s): failing %{public}s", r.app.path,
			     r.dst_ip, _failOpen ? "open" : "closed");
		if (fd >= 0)
			close(fd);
		if (_failOpen)
			[self passThrough:tcp request:r];
		else
			[self closeFlow:tcp];
		return;
	}
	bool stale;
	@synchronized(self) {
		stale = strcmp(reply.policy_version, _table.policy_version) != 0;
	}
	if (stale)
		[self fetchTable];
	switch (reply.verdict) {
	case FRAME_ACCEPT:
		[self relay:tcp socket:fd];
		return;
	case FRAME_BYPASS:
		close(fd);
		[self passThrough:tcp request:r];
		return;
	case FRAME_REJECT:
		os_log(lg, "rejected %{public}s -> %{public}s: %{public}s", r.app.path, r.dst_ip, reply.reason);
		close(fd);
		[self closeFlow:tcp];
		return;
	}
}

- (void)closeFlow:(NEAppProxyTCPFlow *)tcp
{
	[tcp openWithLocalEndpoint:nil completionHandler:^(NSError *e) {
		[tcp closeReadWithError:nil];
		[tcp closeWriteWithError:nil];
	}];
}

/* Flow <-> socket, each direction on its own; an end of stream either
 * way is passed on as a half-close. */
- (void)relay:(NEAppProxyTCPFlow *)tcp socket:(int)fd
{
	[tcp openWithLocalEndpoint:nil completionHandler:^(NSError *e) {
		if (e) {
			close(fd);
			return;
		}
		__block int directions = 2;
		void (^finished)(void) = ^{
			@synchronized(tcp) {
				if (--directions == 0)
					close(fd);
			}
		};
		[self pumpFlow:tcp toSocket:fd done:finished];
		dispatch_async(self->_flows, ^{
			char buf[65536];
			ssize_t n;
			while ((n = read(fd, buf, sizeof buf)) > 0) {
				dispatch_semaphore_t sent = dispatch_semaphore_create(0);
				__block BOOL ok = YES;
				[tcp writeData:[NSData dataWithBytes:buf length:(NSUInteger)n]
				    withCompletionHandler:^(NSError *we) {
					    ok = we == nil;
					    dispatch_semaphore_signal(sent);
				    }];
				dispatch_semaphore_wait(sent, DISPATCH_TIME_FOREVER);
				if (!ok)
					break;
			}
			[tcp closeWriteWithError:nil];
			finished();
		});
	}];
}

- (void)pumpFlow:(NEAppProxyTCPFlow *)tcp toSocket:(int)fd done:(void (^)(void))finished
{
	[tcp readDataWithCompletionHandler:^(NSData *data, NSError *e) {
		if (e || data.length == 0) {
			shutdown(fd, SHUT_WR);
			[tcp closeReadWithError:nil];
			finished();
			return;
		}
		const char *p = data.bytes;
		for (size_t off = 0; off < data.length;) {
			ssize_t w = write(fd, p + off, data.length - off);
			if (w <= 0) {
				[tcp closeReadWithError:nil];
				finished();
				return;
			}
			off += (size_t)w;
		}
		[self pumpFlow:tcp toSocket:fd done:finished];
	}];
}

/* The engine left the flow alone: the extension connects to the
 * destination itself (as the OS would have) and relays. */
- (void)passThrough:(NEAppProxyTCPFlow *)tcp request:(frame_request_t)r
{
	int fd = socket(strchr(r.dst_ip, ':') ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (strchr(r.dst_ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(r.dst_port);
		inet_pton(AF_INET6, r.dst_ip, &a->sin6_addr);
		len = sizeof *a;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(r.dst_port);
		inet_pton(AF_INET, r.dst_ip, &a->sin_addr);
		len = sizeof *a;
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) != 0) {
		if (fd >= 0)
			close(fd);
		[self closeFlow:tcp];
		return;
	}
	[self relay:tcp socket:fd];
}

@end
