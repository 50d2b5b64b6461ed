-- Tests for rules/default.lua:
--   dlpgate test rules/default.lua rules/tests/default_test.lua
-- Flows: which programs and sites are left alone. Requests: what is
-- blocked, what is masked (the exact bytes forwarded), what passes.

local C = require "tests.cases"
local fake, B32, JSON, MULTIPART = C.fake, C.B32, C.JSON, C.MULTIPART
local function pem(label)
	return C.pem(label, 700, 6)
end

local function app(signing_id, path)
	return { anchor = "apple", signing_id = signing_id, path = path }
end

local function flow_case(name, flow, verdict, reason)
	return { name = name, flow = flow, expect = { flow = verdict, reason = reason } }
end

local AWS_ID = "AKIA" .. fake(11, 16, B32)

-- Flows that should be inspected but cannot be: every reason, for a signed
-- app nobody drives and a root-owned system daemon (let through), curl, a
-- browser and a client with no identity (the explicit proxy: refused).
local UNINSPECTABLE_APPS = {
	{ "a signed third-party app", "bypass", { team_id = "ABCDE12345", signing_id = "com.example.updater",
		path = "/Applications/Updater.app/Contents/MacOS/Updater" } },
	{ "a root-owned system daemon", "bypass", { anchor = "system", path = "/usr/lib/apt/methods/https", uid = 0,
		pid = 42 } },
	{ "Apple's curl", "block", app("com.apple.curl", "/usr/bin/curl") },
	{ "Chrome", "block", { team_id = "EQHXZ8M8AV", signing_id = "com.google.Chrome.helper",
		path = "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper" } },
	{ "an unknown client", "block", nil },
}
local function uninspectable_cases()
	local t = {}
	for _, code in ipairs({ "pinned", "alpn", "not-http", "encoding", "upgrade", "document" }) do
		for _, a in ipairs(UNINSPECTABLE_APPS) do
			local name, verdict, who = a[1], a[2], a[3]
			t[#t + 1] = { name = code .. ": " .. name, flow = { host = "upload.example", app = who },
				uninspectable = code, expect = { flow = verdict, reason = verdict == "block"
					and "dlpgate must inspect this connection but cannot (" .. code .. ")"
					or "not inspectable (" .. code .. "), let through" } }
		end
	end
	return t
end

local cases = {
	-- flows
	flow_case("Apple daemon left to the OS", { host = "gateway.icloud.example", app = app("com.apple.nsurlsessiond",
		"/usr/libexec/nsurlsessiond") }, "bypass", "Apple platform code com.apple.nsurlsessiond"),
	flow_case("softwareupdated left to the OS", { host = "swscan.example", app = app("com.apple.softwareupdated",
		"/System/Library/PrivateFrameworks/SoftwareUpdate.framework/Resources/softwareupdated") }, "bypass"),
	flow_case("Apple's curl is inspected", { host = "paste.example", app = app("com.apple.curl", "/usr/bin/curl") },
		"inspect"),
	flow_case("Apple's nc, known only by path, is inspected", { host = "paste.example", app = app(nil, "/usr/bin/nc") },
		"inspect"),
	flow_case("ssh is inspected", { host = "git.example", app = app("com.apple.openssh.ssh", "/usr/bin/ssh") }, "inspect"),
	flow_case("osascript is inspected", { host = "x.example", app = app("com.apple.osascript", "/usr/bin/osascript") },
		"inspect"),
	flow_case("zsh is inspected", { host = "x.example", app = app("com.apple.zsh", "/bin/zsh") }, "inspect"),
	flow_case("python3 from the command line tools is inspected", { host = "x.example",
		app = app("com.apple.python3", "/Library/Developer/CommandLineTools/usr/bin/python3") }, "inspect"),
	flow_case("Safari's networking process is inspected", { host = "upload.example", app = app(
		"com.apple.WebKit.Networking",
		"/System/Library/Frameworks/WebKit.framework/Versions/A/XPCServices/com.apple.WebKit.Networking.xpc/Contents/MacOS/com.apple.WebKit.Networking") },
		"inspect"),
	flow_case("Mail is inspected", { host = "smtp.example", app = app("com.apple.mail",
		"/System/Applications/Mail.app/Contents/MacOS/Mail") }, "inspect"),
	flow_case("a third-party app is inspected", { host = "upload.example", app = { team_id = "ABCDE12345",
		signing_id = "com.example.uploader", path = "/Applications/Uploader.app/Contents/MacOS/Uploader" } }, "inspect"),
	flow_case("an explicit-proxy flow (no app known) is inspected", { host = "upload.example" }, "inspect"),
	flow_case("Apple services are not decrypted", { host = "p52-contacts.icloud.com" }, "bypass", "sensitive site"),
	flow_case("apple.com itself is not decrypted", { host = "apple.com" }, "bypass", "sensitive site"),
	flow_case("a look-alike is inspected", { host = "apple.com.evil.example" }, "inspect"),

	-- requests: blocked
	{ name = "AWS key pair in a config upload is blocked", request = { method = "PUT", body = "[default]\n"
		.. "aws_access_key_id = " .. AWS_ID .. "\naws_secret_access_key = " .. fake(12, 40, B64) .. "\n" },
		expect = { verdict = "block", detectors = { "aws_access_key_id", "aws_secret_access_key" },
			reason = "credential upload: aws_access_key_id, aws_secret_access_key" } },
	{ name = "private key in a multipart upload is blocked", request = { headers = MULTIPART, body = "--XYZ\r\n"
		.. "Content-Disposition: form-data; name=\"file\"; filename=\"id_rsa\"\r\nContent-Type: text/plain\r\n\r\n"
		.. pem("RSA PRIVATE KEY") .. "\r\n--XYZ--\r\n" },
		expect = { verdict = "block", detectors = { "private_key" } } },
	{ name = "a key next to a card: the block wins", request = { body = "card 4526 0181 5908 3012 key " .. AWS_ID },
		expect = { verdict = "block", detectors = { "aws_access_key_id" } } },
	{ name = "a gzip'd key is still blocked", request = { body = "AWS_ACCESS_KEY_ID=" .. AWS_ID, encoding = "gzip" },
		expect = { verdict = "block" } },

	-- requests: masked in flight
	{ name = "a card is masked, the rest goes through", request = { method = "POST",
		body = "order=77&card=4526 0181 5908 3012&note=thanks" },
		expect = { verdict = "redact", detectors = { "credit_card" },
			body = "order=77&card=4526 **** **** 3012&note=thanks" } },
	{ name = "9 digits after an SSN word are masked", request = { headers = JSON, body = "{\"ssn\":\"536228417\"}" },
		expect = { verdict = "redact", detectors = { "us_ssn_labeled" }, body = "{\"ssn\":\"*****8417\"}" } },
	{ name = "an SSN in JSON is masked", request = { headers = JSON, body = "{\"name\":\"Jane\",\"ssn\":\"536-22-8417\"}" },
		expect = { verdict = "redact", detectors = { "us_ssn" }, body = "{\"name\":\"Jane\",\"ssn\":\"***-**-8417\"}" } },
	{ name = "cards and SSNs every 4 KiB of a 64 KiB upload are all masked", request = { body = (function()
		local t = {}
		for i = 1, 16 do t[i] = "card 4526 0181 5908 3012 ssn 536-22-8417 " .. string.rep("x", 4096 - 41) end
		return table.concat(t)
	end)() }, expect = { verdict = "redact", body = (function()
		local t = {}
		for i = 1, 16 do t[i] = "card 4526 **** **** 3012 ssn ***-**-8417 " .. string.rep("x", 4096 - 41) end
		return table.concat(t)
	end)() } },

	{ name = "more cards than a scan keeps spans for: refused, never half masked",
		request = { body = string.rep("4526 0181 5908 3012 ", 300) },
		expect = { verdict = "block", reason = "cannot redact: credit_card matched 300 times" } },

	-- a body nobody can read is not waved through
	{ name = "a body in a coding dlpgate cannot undo is refused", request = { headers = {
		["Content-Encoding"] = "compress" }, body = "card 4526 0181 5908 3012" },
		expect = { verdict = "block", reason = "dlpgate must inspect this connection but cannot (encoding)" } },
	{ name = "a gzip body that does not decode is refused", request = { headers = {
		["Content-Encoding"] = "gzip" }, body = "not gzip at all" },
		expect = { verdict = "block", reason = "dlpgate must inspect this connection but cannot (encoding)" } },

	-- requests: passed
	{ name = "a clean upload passes", request = { method = "POST", body = "hello, nothing to see" },
		expect = { verdict = "pass", clean = true } },
	{ name = "a Luhn-invalid number passes", request = { body = "ref 4526 0181 5908 3013" },
		expect = { verdict = "pass", clean = true } },
	{ name = "an email address is not this policy's business", request = { body = "mail jane.doe@acme-corp.com" },
		expect = { verdict = "pass", clean = true } },
	{ name = "a card in a GET's query string is masked (URL view of the target)",
		request = { method = "GET", url = "/search?q=4526+0181+5908+3012" },
		expect = { verdict = "redact", detectors = { "credit_card" } } },
	{ name = "a GET without a card passes", request = { method = "GET", url = "/search?q=4526+0181" },
		expect = { verdict = "pass" } },

	-- WebSocket messages (on_message)
	{ name = "a card in a WebSocket text message is masked", websocket = { data = "{\"pay\":\"4526 0181 5908 3012\"}" },
		expect = { verdict = "redact", detectors = { "credit_card" }, body = "{\"pay\":\"4526 **** **** 3012\"}" } },
	{ name = "a card in a binary WebSocket message is masked", websocket = { type = "binary",
		data = "\0\1card=4526018159083012\255" }, expect = { verdict = "redact", body = "\0\1card=4526********3012\255" } },
	{ name = "a key in a WebSocket message is blocked", request = { url = "https://chat.example/socket" },
		websocket = { data = "here: " .. AWS_ID }, expect = { verdict = "block", reason = "credential upload: aws_access_key_id" } },
	{ name = "a clean WebSocket message passes", websocket = { data = "{\"type\":\"typing\"}" },
		expect = { verdict = "pass", clean = true, body = "{\"type\":\"typing\"}" } },
	{ name = "what a WebSocket server sends passes", websocket = { from = "server", data = "card 4526 0181 5908 3012" },
		expect = { verdict = "pass" } },
	{ name = "an empty WebSocket message passes", websocket = { data = "" }, expect = { verdict = "pass" } },
}
for _, c in ipairs(uninspectable_cases()) do
	cases[#cases + 1] = c
end
return cases
