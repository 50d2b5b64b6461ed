/*
 * The container app, as a command line (it lives in /Applications, as
 * system extensions require, and has no window):
 *
 *   dlpgate.app/Contents/MacOS/dlpgate-app activate [--fail-mode open|closed]
 *   dlpgate.app/Contents/MacOS/dlpgate-app deactivate
 *   dlpgate.app/Contents/MacOS/dlpgate-app status
 *   sudo dlpgate.app/Contents/MacOS/dlpgate-app trust-ca /Library/Application\ Support/dlpgate/state/ca.pem
 *
 * activate submits the OSSystemExtensionRequest (the user approves it once
 * in System Settings, or an MDM profile pre-approves it), then saves and
 * starts the NETransparentProxyManager configuration. trust-ca adds the
 * engine's CA to the System keychain as a trusted root (needs root).
 */
#import <Foundation/Foundation.h>
#import <NetworkExtension/NetworkExtension.h>
#import <SystemExtensions/SystemExtensions.h>

static NSString *const kExtension = @"com.dlpgate.app.sysext";

@interface Requester : NSObject <OSSystemExtensionRequestDelegate>
@property int result;
@end

@implementation Requester
- (OSSystemExtensionReplacementAction)request:(OSSystemExtensionRequest *)r
		  actionForReplacingExtension:(OSSystemExtensionProperties *)old
				withExtension:(OSSystemExtensionProperties *)new
{
	printf("replacing extension %s with %s\n", old.bundleShortVersion.UTF8String, new.bundleShortVersion.UTF8String);
	return OSSystemExtensionReplacementActionReplace;
}
- (void)requestNeedsUserApproval:(OSSystemExtensionRequest *)r
{
	printf("approve the extension in System Settings > Privacy & Security (or pre-approve it by MDM)\n");
}
- (void)request:(OSSystemExtensionRequest *)r didFinishWithResult:(OSSystemExtensionRequestResult)result
{
	self.result = result == OSSystemExtensionRequestCompleted ? 0 : 3;
	CFRunLoopStop(CFRunLoopGetMain());
}
- (void)request:(OSSystemExtensionRequest *)r didFailWithError:(NSError *)e
{
	fprintf(stderr, "dlpgate-app: %s\n", e.localizedDescription.UTF8String);
	self.result = 1;
	CFRunLoopStop(CFRunLoopGetMain());
}
@end

static int submit(OSSystemExtensionRequest *req)
{
	Requester *d = [Requester new];
	req.delegate = d;
	[[OSSystemExtensionManager sharedManager] submitRequest:req];
	CFRunLoopRun();
	return d.result;
}

/* Loads the proxy configuration, lets f change it, saves it. */
static int with_manager(void (^f)(NETransparentProxyManager *m, void (^save)(void)))
{
	__block int rc = 0;
	[NETransparentProxyManager loadAllFromPreferencesWithCompletionHandler:^(NSArray *all, NSError *e) {
		if (e) {
			fprintf(stderr, "dlpgate-app: %s\n", e.localizedDescription.UTF8String);
			rc = 1;
			CFRunLoopStop(CFRunLoopGetMain());
			return;
		}
		NETransparentProxyManager *m = all.firstObject ?: [NETransparentProxyManager new];
		f(m, ^{
			[m saveToPreferencesWithCompletionHandler:^(NSError *se) {
				if (se) {
					fprintf(stderr, "dlpgate-app: %s\n", se.localizedDescription.UTF8String);
					rc = 1;
				}
				CFRunLoopStop(CFRunLoopGetMain());
			}];
		});
	}];
	CFRunLoopRun();
	return rc;
}

static int activate(NSString *failMode)
{
	int rc = submit([OSSystemExtensionRequest activationRequestForExtension:kExtension
									 queue:dispatch_get_main_queue()]);
	if (rc)
		return rc;
	rc = with_manager(^(NETransparentProxyManager *m, void (^save)(void)) {
		NETunnelProviderProtocol *p = [NETunnelProviderProtocol new];
		p.providerBundleIdentifier = kExtension;
		p.serverAddress = @"dlpgate";
		p.providerConfiguration = @{@"socket" : @"/var/run/dlpgate/sysext.sock", @"fail_mode" : failMode};
		m.protocolConfiguration = p;
		m.localizedDescription = @"dlpgate";
		m.enabled = YES;
		save();
	});
	if (rc)
		return rc;
	__block int failed = 0;
	rc = with_manager(^(NETransparentProxyManager *m, void (^__unused save)(void)) {
		/* starting changes nothing to save: with_manager's save is not called */
		NSError *e = nil;
		if (![m.connection startVPNTunnelAndReturnError:&e]) {
			fprintf(stderr, "dlpgate-app: cannot start the proxy: %s\n", e.localizedDescription.UTF8String);
			failed = 1;
		} else {
			printf("dlpgate: transparent proxy started (fail mode %s)\n", failMode.UTF8String);
		}
		CFRunLoopStop(CFRunLoopGetMain());
	});
	return rc ? rc : failed;
}

static int status(void)
{
	return with_manager(^(NETransparentProxyManager *m, void (^__unused save)(void)) {
		/* status only reads the configuration: nothing to save */
		static const char *const names[] = {"invalid", "disconnected", "connecting", "connected", "reasserting",
						    "disconnecting"};
		NEVPNStatus s = m.connection.status;
		printf("dlpgate: proxy %s, %s\n", m.enabled ? "enabled" : "disabled",
		       s <= NEVPNStatusDisconnecting ? names[s] : "?");
		CFRunLoopStop(CFRunLoopGetMain());
	});
}

static int trust_ca(const char *path)
{
	/* the security tool does the System keychain's authorization dance */
	NSTask *t = [NSTask launchedTaskWithLaunchPath:@"/usr/bin/security"
					     arguments:@[ @"add-trusted-cert", @"-d", @"-r", @"trustRoot", @"-k",
							  @"/Library/Keychains/System.keychain", @(path) ]];
	[t waitUntilExit];
	return t.terminationStatus;
}

int main(int argc, char **argv)
{
	@autoreleasepool {
		const char *cmd = argc > 1 ? argv[1] : "";
		if (!strcmp(cmd, "activate")) {
			NSString *mode = argc > 3 && !strcmp(argv[2], "--fail-mode") ? @(argv[3]) : @"open";
			if (![mode isEqual:@"open"] && ![mode isEqual:@"closed"]) {
				fprintf(stderr, "dlpgate-app: --fail-mode open or closed\n");
				return 2;
			}
			return activate(mode);
		}
		if (!strcmp(cmd, "deactivate"))
			return submit([OSSystemExtensionRequest deactivationRequestForExtension:kExtension
										  queue:dispatch_get_main_queue()]);
		if (!strcmp(cmd, "status"))
			return status();
		if (!strcmp(cmd, "trust-ca") && argc == 3)
			return trust_ca(argv[2]);
		fprintf(stderr, "usage: dlpgate-app activate [--fail-mode open|closed] | deactivate | status | trust-ca CA.pem\n");
		return 2;
	}
}
