-- rules/default.lua: the policy dlpgate runs when nothing else is given
-- (`make run`, and the starting point for your own).
--
--   flows     Apple platform daemons are left alone (their traffic is the
--             OS's, often pinned, and never carries a user's upload), but
--             not the Apple-signed programs a person or a script can drive
--             to send data out: curl, nc, ssh, scp, sftp, rsync, git,
--             python, perl, ruby, osascript, the shells, Safari (and the
--             WebKit process that does its networking), Mail, Notes.
--             Sites in SENSITIVE_SITES are not decrypted at all. Everything
--             else is inspected.
--   requests  Cloud credentials and private keys are blocked: the upload
--             never reaches the server. Payment cards and US social
--             security numbers are masked in flight and the rest of the
--             upload goes through.
--   responses are not read (no on_response): downloads are not this
--             policy's concern, and not holding them keeps them fast.
--   uninspectable  flows that should be inspected but cannot be (a client
--             that pins its certificates, h2-only ALPN, not HTTP, ...) go
--             on only for signed or system code no person drives; the
--             rest are blocked.
--
-- Try it:  dlpgate test rules/default.lua rules/tests/default_test.lua
local dlp = require "dlp"
local pii = require "pii"
local secrets = require "secrets"

mode = "enforce"  -- "monitor": report what would happen, change nothing
fail = "open"     -- a policy error passes the message (and is reported)

-- Not decrypted: your bank, health and HR providers, sites that pin their
-- certificates. Patterns as in dlp.host_matches: "*.example.com" matches
-- every name under example.com, not example.com itself.
local SENSITIVE_SITES = {
	"apple.com", "*.apple.com", "icloud.com", "*.icloud.com", "*.mzstatic.com", -- Apple services (pinned)
}

-- Apple-signed code that moves data because a person or a script tells it
-- to; matched by signing identifier (the system extension checks the
-- signature) or, where a source knows only the executable, by path (the
-- command-line tools live in /usr/bin and /bin; the daemons in
-- /usr/libexec, /usr/sbin and /System/Library, which are not listed).
local USER_DRIVABLE_SIGNING_IDS = {
	["com.apple.curl"] = true, ["com.apple.nc"] = true, ["com.apple.nscurl"] = true,
	["com.apple.ssh"] = true, ["com.apple.scp"] = true, ["com.apple.sftp"] = true,
	["com.apple.openssh.ssh"] = true, ["com.apple.rsync"] = true, ["com.apple.ftp"] = true,
	["com.apple.telnet"] = true, ["com.apple.git"] = true,
	["com.apple.python3"] = true, ["com.apple.perl"] = true, ["com.apple.perl5"] = true,
	["com.apple.ruby"] = true, ["com.apple.osascript"] = true, ["com.apple.swift"] = true,
	["com.apple.bash"] = true, ["com.apple.zsh"] = true, ["com.apple.sh"] = true,
	["com.apple.ksh"] = true, ["com.apple.tcsh"] = true, ["com.apple.csh"] = true,
	["com.apple.dash"] = true,
	["com.apple.Safari"] = true, ["com.apple.WebKit.Networking"] = true,
	["com.apple.mail"] = true, ["com.apple.Notes"] = true,
}

local USER_DRIVABLE_PATHS = {
	"^/usr/bin/", "^/bin/", "^/Library/Developer/CommandLineTools/",
	"^/Applications/Xcode[^/]*%.app/", "^/Applications/Safari%.app/", "^/System/Applications/Mail%.app/",
	"^/System/Applications/Notes%.app/", "WebKit%.framework/.*com%.apple%.WebKit%.Networking",
	-- browsers on Linux
	"^/usr/lib/chromium/", "^/opt/google/chrome/", "^/usr/lib/firefox", "^/opt/microsoft/msedge/", "^/snap/",
}

-- Other vendors' browsers: driven by a person, so never trusted to go on
-- uninspected (on_uninspectable below).
local BROWSER_SIGNING_IDS = {
	["com.google.Chrome"] = true, ["com.google.Chrome.helper"] = true, ["org.mozilla.firefox"] = true,
	["com.microsoft.edgemac"] = true, ["com.microsoft.edgemac.helper"] = true, ["com.brave.Browser"] = true,
	["com.brave.Browser.helper"] = true, ["com.operasoftware.Opera"] = true, ["com.vivaldi.Vivaldi"] = true,
	["company.thebrowser.Browser"] = true, ["org.chromium.Chromium"] = true,
}

local function user_drivable(app)
	if app.signing_id then
		return USER_DRIVABLE_SIGNING_IDS[app.signing_id] == true or BROWSER_SIGNING_IDS[app.signing_id] == true
	end
	for _, pattern in ipairs(USER_DRIVABLE_PATHS) do
		if app.path and app.path:find(pattern) then
			return true
		end
	end
	return false
end

-- The same decisions, for the macOS system extension to take itself before
-- the engine sees the flow (flows it accepts can never go back to the OS).
-- Built from the lists above, so the two cannot disagree.
local drivable_ids = {}
for id in pairs(USER_DRIVABLE_SIGNING_IDS) do
	drivable_ids[#drivable_ids + 1] = id
end
table.sort(drivable_ids)
static_bypass = {
	apple_platform = true,
	except_signing_ids = drivable_ids,
	hosts = SENSITIVE_SITES,
}

function on_flow(flow)
	if flow.app.anchor == "apple" and not user_drivable(flow.app) then
		return dlp.bypass("Apple platform code " .. (flow.app.signing_id or flow.app.path or "?"))
	end
	if dlp.host_matches(flow.host, SENSITIVE_SITES) then
		return dlp.bypass("sensitive site")
	end
	return dlp.inspect()
end

-- A flow this policy chose to inspect that cannot be: the client refused
-- dlpgate's certificate (now or before: a pinning app), offers no
-- HTTP/1.1 in ALPN, speaks something else, or sends an encoding or switches
-- to a protocol dlpgate cannot read. Only code the system vouches for (a
-- signature, or a root-owned system binary) that no person drives may go
-- on uninspected; curl, scripting languages, browsers and clients nobody
-- can name (the explicit proxy) are refused, with a reason they can read.
function on_uninspectable(flow, why)
	local app = flow.app
	local vouched = app.signing_id ~= nil or app.anchor == "system"
	if vouched and not user_drivable(app) then
		return dlp.bypass("not inspectable (" .. why.code .. "), let through for "
			.. (app.signing_id or app.path) .. ": " .. why.detail)
	end
	return dlp.block("dlpgate must inspect this connection but cannot (" .. why.code .. "): " .. why.detail)
end

-- Blocked: a credential that opens a cloud account or a server.
local BLOCK = {
	aws_access_key_id = secrets.aws_access_key_id,
	aws_secret_access_key = secrets.aws_secret_access_key,
	gcp_service_account_key = secrets.gcp_service_account_key,
	google_oauth_client_secret = secrets.google_oauth_client_secret,
	azure_storage_account_key = secrets.azure_storage_account_key,
	azure_shared_access_key = secrets.azure_shared_access_key,
	digitalocean_token = secrets.digitalocean_token,
	private_key = secrets.private_key,
	putty_private_key = secrets.putty_private_key,
}

-- Redacted: personal data the upload can do without.
local REDACT = {
	credit_card = pii.credit_card,
	us_ssn = pii.us_ssn,
	us_ssn_labeled = pii.us_ssn_labeled,
}

local ALL = dlp.merge(BLOCK, REDACT)

function on_request(req, flow)
	local found = req:scan(ALL)
	local credentials = dlp.only(found, BLOCK)
	if next(credentials) then
		return dlp.block("credential upload: " .. dlp.names(credentials), credentials)
	end
	if next(found) then
		return dlp.redact(found)
	end
	return dlp.pass()
end

-- WebSocket messages after the 101: what a page or an app sends is judged
-- as an upload is (same detectors, same verdicts: a credential closes the
-- connection with 1008, a card is masked in the message); what the server
-- sends passes, as responses do.
function on_message(msg, flow)
	if msg.websocket.from == "server" then
		return dlp.pass()
	end
	return on_request(msg, flow)
end
