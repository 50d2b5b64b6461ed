/* The system extension's entry point: the OS starts the provider class
 * named in Info.plist (NetworkExtension > NEProviderClasses). */
#import <Foundation/Foundation.h>
#import <NetworkExtension/NetworkExtension.h>

int main(void)
{
	@autoreleasepool {
		[NEProvider startSystemExtensionMode];
	}
	dispatch_main();
}
