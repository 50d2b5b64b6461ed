-- rules/secrets.lua: credentials - cloud and SaaS API keys and tokens,
-- private keys, JWTs, passwords in assignments, URLs and connection
-- strings.
--
--   local secrets = require "secrets"  -- from a policy in rules/ or rules/*/
--   local found = req:scan(secrets)
--
-- Every format with a literal prefix has it as a keyword, so its regex only
-- runs in a window around a keyword hit; the few without one (Discord,
-- Telegram, Twilio, Okta, Heroku, Datadog) take the vendor's name or the
-- key name as keyword instead. A match must start within `window` bytes of
-- a keyword (256 unless set) and may run as long as its regex allows (PEM
-- blocks, JWTs, generic values up to 1 KiB); gcp_service_account_key sets
-- a wide window because its keyword can sit anywhere in the key file, and
-- generic_secret and aws_secret_access_key a one-sided one (before = N,
-- after = 0) because their keyword is in the name the match starts with,
-- which keeps their regexes off most of a text that talks about tokens
-- and passwords. Severity: critical for live cloud and
-- payment keys and private keys, high for most tokens, medium for generic
-- password/secret assignments, low for test-mode keys.
--
-- generic_secret also reports most vendor tokens when they are assigned to
-- a name like TOKEN= or api_key: (a second, medium finding next to the
-- specific one); a policy that wants one finding per secret can ignore
-- generic_secret when a specific detector found something.
--
-- The examples are format-valid but fake. They are assembled when the pack
-- loads (fake() below) so that this file holds no string a secret scanner
-- or a push-protection hook would stop.
local dlp = require "dlp"

local M = {}

-- ---- fake values for the examples ----

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
local HEX = "0123456789abcdef"
local B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
local B64 = ALNUM .. "+/"
local URLSAFE = ALNUM .. "_-"
local LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local DIGITS = "0123456789"

-- n characters of alphabet, the same for the same seed.
local function fake(seed, n, alphabet)
	alphabet = alphabet or ALNUM
	local x, t = seed, {}
	for i = 1, n do
		x = (x * 1103515245 + 12345) % 2147483648
		local k = (x >> 16) % #alphabet + 1
		t[i] = alphabet:sub(k, k)
	end
	return table.concat(t)
end

-- Placeholders nobody should be warned about.
local PLACEHOLDERS = { "changeme", "change_me", "change-me", "example", "xxxxx", "${", "<your", "your_", "your-",
	"yourtoken", "placeholder", "dummy", "redacted", "****", "{{", "%(", "replace_me", "replaceme", "<insert",
	"<token", "<secret", "<password", "<api", "process.env", "os.environ", "getenv", "secretkeyref" }

-- A password in a URL or connection string that is a stand-in, not a password.
local PLACEHOLDER_PASSWORD = [=[(?i)^(?:pass(?:word|wd)?|secret|pwd|pw|pass123|password123|\*+|x+|\.+|changeme|example|test|token|root|admin|postgres|mysql|guest|user|username|\$\{?[\w.]+\}?|\$\(\w+\)|%s|%\(\w+\)s|\{+[^}]*\}+|<[^>]*>|\[[^\]]*\])$]=]

-- ---- AWS ----

M.aws_access_key_id = dlp.detector{
	name = "aws_access_key_id",
	description = "AWS access key ids (AKIA long-term, ASIA temporary, and the AGPA/AIDA/AROA/AIPA/ANPA/ANVA/"
		.. "ASCA/ABIA/ACCA unique ids), 4-letter prefix + 16 base32 characters",
	regex = [[(?<![A-Za-z0-9])((?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ASCA|ABIA|ACCA)[A-Z2-7]{16})(?![A-Za-z0-9])]],
	keywords = { "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ASCA", "ABIA", "ACCA" },
	group = 1,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 4 },
	examples = {
		match = {
			"aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
			"{\"AccessKeyId\": \"ASIA" .. fake(11, 16, B32) .. "\"}",
			"export AWS_ACCESS_KEY_ID=AKIA" .. fake(12, 16, B32),
		},
		nomatch = {
			"AKIAIOSFODNN7EXAMPL",             -- 19 characters
			"AKIAIOSFODNN7EXAMPLE2",           -- 21 characters
			"akiaiosfodnn7example",            -- key ids are upper case
			"AKIA0000111122223333",            -- 0 and 1 are not base32
			"XKIAIOSFODNN7EXAMPLE",            -- no such prefix
		},
	},
}

M.aws_secret_access_key = dlp.detector{
	name = "aws_secret_access_key",
	description = "AWS secret access keys: 40 base64 characters assigned to an aws...secret or "
		.. "secret_access_key / SecretAccessKey name, entropy >= 4.0 (a hex digest never reaches it)",
	regex = [[(?i)(?:aws[\w.-]{0,20}?secret[\w.-]{0,20}?|secret[_.-]?access[_.-]?key)["']?\s{0,5}(?:=|:|:=|=>)\s{0,5}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])]],
	keywords = { "secret" },
	-- the match starts at "aws", at most 23 characters before "secret", or at "secret"
	window = { before = 24, after = 0 },
	group = 1,
	entropy = 4.0,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			"{\"SecretAccessKey\": \"" .. fake(21, 40, B64) .. "\"}",
			"AWS_SECRET_KEY='" .. fake(22, 40, B64) .. "'",
		},
		nomatch = {
			"aws_secret_access_key = da39a3ee5e6b4b0d3255bfef95601890afd80709",   -- hex digest, low entropy
			"aws_secret_access_key = " .. fake(23, 39, B64),                     -- 39 characters
			"aws_secret_access_key = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			"my_secret = " .. fake(24, 40, B64),                                 -- not an AWS name
		},
	},
}

-- ---- GitHub ----

M.github_pat = dlp.detector{
	name = "github_pat",
	description = "GitHub classic personal access tokens (ghp_ + 36)",
	regex = [[(?<![A-Za-z0-9_])(ghp_[A-Za-z0-9]{36,251})(?![A-Za-z0-9_])]],
	keywords = { "ghp_" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 7, keep_last = 0 },
	examples = {
		match = {
			"GITHUB_TOKEN=ghp_" .. fake(31, 36),
			"git clone https://x-access-token:ghp_" .. fake(32, 36) .. "@github.com/acme/app",
		},
		nomatch = {
			"ghp_" .. fake(33, 35),                      -- one short
			"ghp_your_token_here",
			"xghp_" .. fake(34, 36) .. "x",              -- inside a word
		},
	},
}

M.github_oauth_token = dlp.detector{
	name = "github_oauth_token",
	description = "GitHub OAuth access tokens (gho_ + 36)",
	regex = [[(?<![A-Za-z0-9_])(gho_[A-Za-z0-9]{36,251})(?![A-Za-z0-9_])]],
	keywords = { "gho_" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 7, keep_last = 0 },
	examples = {
		match = { "token: gho_" .. fake(41, 36), "{\"access_token\":\"gho_" .. fake(42, 36) .. "\"}" },
		nomatch = { "gho_" .. fake(43, 20), "gho_" .. fake(44, 30) .. "-" .. fake(45, 6) },
	},
}

M.github_app_token = dlp.detector{
	name = "github_app_token",
	description = "GitHub App user-to-server (ghu_) and installation/server-to-server (ghs_) tokens",
	regex = [[(?<![A-Za-z0-9_])(gh[us]_[A-Za-z0-9]{36,251})(?![A-Za-z0-9_])]],
	keywords = { "ghu_", "ghs_" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 7, keep_last = 0 },
	examples = {
		match = { "GH_TOKEN=ghs_" .. fake(51, 36), "user token ghu_" .. fake(52, 36) },
		nomatch = { "ghx_" .. fake(53, 36), "ghs_" .. fake(54, 12) },
	},
}

M.github_refresh_token = dlp.detector{
	name = "github_refresh_token",
	description = "GitHub refresh tokens (ghr_ + 36 or more)",
	regex = [[(?<![A-Za-z0-9_])(ghr_[A-Za-z0-9]{36,251})(?![A-Za-z0-9_])]],
	keywords = { "ghr_" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 7, keep_last = 0 },
	examples = {
		match = { "refresh_token=ghr_" .. fake(61, 76), "\"ghr_" .. fake(62, 36) .. "\"" },
		nomatch = { "ghr_" .. fake(63, 35), "ghr_" .. fake(64, 36) .. "_suffix" },
	},
}

M.github_fine_grained_pat = dlp.detector{
	name = "github_fine_grained_pat",
	description = "GitHub fine-grained personal access tokens (github_pat_ + 22 + _ + 59)",
	regex = [[(?<![A-Za-z0-9_])(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?![A-Za-z0-9_])]],
	keywords = { "github_pat_" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 12, keep_last = 0 },
	examples = {
		match = {
			"token = \"github_pat_" .. fake(71, 22) .. "_" .. fake(72, 59) .. "\"",
			"github_pat_" .. fake(73, 22) .. "_" .. fake(74, 59),
		},
		nomatch = {
			"github_pat_" .. fake(75, 22) .. "_" .. fake(76, 40),   -- second part too short
			"github_pat_ is the prefix of fine-grained tokens",
		},
	},
}

-- ---- GitLab ----

M.gitlab_pat = dlp.detector{
	name = "gitlab_pat",
	description = "GitLab personal, project and group access tokens (glpat-, also the routable .01. form)",
	regex = [[(?<![\w-])(glpat-[A-Za-z0-9_-]{20,64}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?)(?![\w-])]],
	keywords = { "glpat-" },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 7, keep_last = 0 },
	examples = {
		match = {
			"PRIVATE-TOKEN: glpat-" .. fake(81, 20, URLSAFE),
			"GITLAB_TOKEN=glpat-" .. fake(82, 27, URLSAFE) .. ".01." .. fake(83, 9, LOWER_ALNUM),
		},
		nomatch = { "glpat-" .. fake(84, 12), "glpat-xxxxxxxxxxxxxxxxxxxx" },
	},
}

M.gitlab_deploy_token = dlp.detector{
	name = "gitlab_deploy_token",
	description = "GitLab deploy tokens (gldt-)",
	regex = [[(?<![\w-])(gldt-[A-Za-z0-9_-]{20,64})(?![\w-])]],
	keywords = { "gldt-" },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "password: gldt-" .. fake(91, 20, URLSAFE), "gldt-" .. fake(92, 24) },
		nomatch = { "gldt-" .. fake(93, 10), "gldt-aaaaaaaaaaaaaaaaaaaaaaaa" },
	},
}

M.gitlab_runner_token = dlp.detector{
	name = "gitlab_runner_token",
	description = "GitLab runner authentication tokens (glrt-) and runner registration tokens (GR1348941)",
	regex = [[(?<![\w-])(glrt-[A-Za-z0-9_-]{20,64}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?|GR1348941[A-Za-z0-9_-]{20,64})(?![\w-])]],
	keywords = { "glrt-", "GR1348941" },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = {
			"token = \"glrt-" .. fake(101, 20, URLSAFE) .. "\"",
			"--registration-token GR1348941" .. fake(102, 20, URLSAFE),
		},
		nomatch = { "glrt-" .. fake(103, 8), "GR1348941" .. fake(104, 6) },
	},
}

M.gitlab_other_token = dlp.detector{
	name = "gitlab_other_token",
	description = "Other GitLab tokens: pipeline trigger (glptt-), feed (glft-), SCIM (glsoat-), CI build "
		.. "(glcbt-), incoming mail (glimt-), OAuth app secret (gloas-), agent (glagent-)",
	regex = [[(?<![\w-])(glptt-[0-9a-f]{40}|gl(?:ft|soat|cbt|imt|oas)-[A-Za-z0-9_-]{20,64}|glagent-[A-Za-z0-9_-]{50,64})(?![\w-])]],
	keywords = { "glptt-", "glft-", "glsoat-", "glcbt-", "glimt-", "gloas-", "glagent-" },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "trigger token glptt-" .. fake(111, 40, HEX), "feed_token=glft-" .. fake(112, 20, URLSAFE) },
		nomatch = { "glptt-" .. fake(113, 40, LETTERS), "glft-short" },
	},
}

-- ---- Slack ----

M.slack_bot_token = dlp.detector{
	name = "slack_bot_token",
	description = "Slack bot tokens (xoxb-)",
	regex = [[(?<![\w-])(xoxb-[0-9]{8,14}-[0-9]{8,14}-[A-Za-z0-9]{20,40})(?![\w-])]],
	keywords = { "xoxb-" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"SLACK_BOT_TOKEN=xoxb-" .. fake(121, 11, DIGITS) .. "-" .. fake(122, 13, DIGITS) .. "-" .. fake(123, 24),
			"{\"token\":\"xoxb-" .. fake(124, 12, DIGITS) .. "-" .. fake(125, 12, DIGITS) .. "-" .. fake(126, 24) .. "\"}",
		},
		nomatch = { "xoxb-123-456-abc", "xoxb-YOUR-BOT-TOKEN" },
	},
}

M.slack_user_token = dlp.detector{
	name = "slack_user_token",
	description = "Slack user tokens (xoxp-)",
	regex = [[(?<![\w-])(xoxp-[0-9]{8,14}-[0-9]{8,14}-[0-9]{8,14}-[A-Za-z0-9]{28,34})(?![\w-])]],
	keywords = { "xoxp-" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"xoxp-" .. fake(131, 11, DIGITS) .. "-" .. fake(132, 11, DIGITS) .. "-" .. fake(133, 12, DIGITS) .. "-" .. fake(134, 32, HEX),
			"token=xoxp-" .. fake(135, 10, DIGITS) .. "-" .. fake(136, 12, DIGITS) .. "-" .. fake(137, 13, DIGITS) .. "-" .. fake(138, 32, HEX),
		},
		nomatch = { "xoxp-1234-5678-9012-abcd", "xoxp-" .. fake(139, 11, DIGITS) .. "-" .. fake(140, 32, HEX) },
	},
}

M.slack_other_token = dlp.detector{
	name = "slack_other_token",
	description = "Other Slack tokens: workspace app (xoxa-), refresh (xoxr-), session (xoxs-), "
		.. "xoxo-, and rotating/config tokens (xoxe-, xoxe.xoxb-/xoxe.xoxp-)",
	regex = [[(?<![\w.-])(xox[aorse]-(?:[0-9]{1,14}-){1,3}[A-Za-z0-9]{8,150}|xoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{60,200})(?![\w-])]],
	keywords = { "xoxa-", "xoxr-", "xoxs-", "xoxo-", "xoxe-", "xoxe." },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"xoxa-2-" .. fake(141, 12, DIGITS) .. "-" .. fake(142, 64, HEX),
			"refresh: xoxr-" .. fake(143, 11, DIGITS) .. "-" .. fake(144, 40),
			"xoxe.xoxp-1-" .. fake(145, 140),
		},
		nomatch = { "xoxr-your-refresh-token", "xoxa-" .. fake(146, 30) },
	},
}

M.slack_app_token = dlp.detector{
	name = "slack_app_token",
	description = "Slack app-level tokens (xapp-)",
	regex = [[(?<![\w-])(xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,14}-[a-f0-9]{64})(?![\w-])]],
	keywords = { "xapp-" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 5, keep_last = 0 },
	examples = {
		match = {
			"SLACK_APP_TOKEN=xapp-1-A" .. fake(151, 10, UPPER_ALNUM) .. "-" .. fake(152, 13, DIGITS) .. "-" .. fake(153, 64, HEX),
			"xapp-1-B" .. fake(154, 9, UPPER_ALNUM) .. "-" .. fake(155, 12, DIGITS) .. "-" .. fake(156, 64, HEX),
		},
		nomatch = { "xapp-1-A0123-123-abc", "xapp-1-a" .. fake(157, 10, LOWER_ALNUM) .. "-" .. fake(158, 13, DIGITS) .. "-" .. fake(159, 64, HEX) },
	},
}

M.slack_webhook_url = dlp.detector{
	name = "slack_webhook_url",
	description = "Slack incoming webhook and workflow trigger URLs (hooks.slack.com/services|workflows|triggers/...)",
	regex = [[hooks\.slack\.com/(?:services/(T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24})|(?:workflows|triggers)/(T[A-Z0-9]{8,12}/A[A-Z0-9]{8,12}/[0-9]{8,20}/[a-f0-9]{32}))(?![A-Za-z0-9])]],
	keywords = { "hooks.slack.com" },
	severity = "high",
	confidence = "high",
	mask = { keep_first = 16, keep_last = 0 },
	examples = {
		match = {
			"https://hooks.slack.com/services/T" .. fake(161, 8, UPPER_ALNUM) .. "/B" .. fake(162, 10, UPPER_ALNUM) .. "/" .. fake(163, 24),
			"url: https://hooks.slack.com/workflows/T" .. fake(164, 10, UPPER_ALNUM) .. "/A" .. fake(165, 10, UPPER_ALNUM) .. "/" .. fake(166, 18, DIGITS) .. "/" .. fake(167, 32, HEX),
		},
		nomatch = {
			"https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXX",
			"https://api.slack.com/services/T" .. fake(168, 8, UPPER_ALNUM) .. "/B" .. fake(169, 10, UPPER_ALNUM) .. "/" .. fake(170, 24),
		},
	},
}

-- ---- Stripe ----

M.stripe_live_secret_key = dlp.detector{
	name = "stripe_live_secret_key",
	description = "Stripe live secret keys (sk_live_)",
	regex = [[(?<![A-Za-z0-9_])(sk_live_[A-Za-z0-9]{24,247})(?![A-Za-z0-9_])]],
	keywords = { "sk_live_" },
	group = 1,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 8, keep_last = 0 },
	examples = {
		match = { "STRIPE_SECRET_KEY=sk_live_" .. fake(171, 24), "Stripe.api_key = 'sk_live_51" .. fake(172, 97) .. "'" },
		nomatch = { "sk_live_" .. fake(173, 16), "sk_live_xxxxxxxxx" },
	},
}

M.stripe_restricted_key = dlp.detector{
	name = "stripe_restricted_key",
	description = "Stripe live restricted keys (rk_live_)",
	regex = [[(?<![A-Za-z0-9_])(rk_live_[A-Za-z0-9]{24,247})(?![A-Za-z0-9_])]],
	keywords = { "rk_live_" },
	group = 1,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 8, keep_last = 0 },
	examples = {
		match = { "rk_live_" .. fake(181, 24), "key: \"rk_live_51" .. fake(182, 97) .. "\"" },
		nomatch = { "rk_live_" .. fake(183, 10), "work_live_" .. fake(184, 24) },
	},
}

M.stripe_test_key = dlp.detector{
	name = "stripe_test_key",
	description = "Stripe test-mode secret and restricted keys (sk_test_, rk_test_): no money moves, still a credential",
	regex = [[(?<![A-Za-z0-9_])([sr]k_test_[A-Za-z0-9]{24,247})(?![A-Za-z0-9_])]],
	keywords = { "sk_test_", "rk_test_" },
	group = 1,
	severity = "low",
	confidence = "high",
	mask = { keep_first = 8, keep_last = 0 },
	examples = {
		match = { "sk_test_" .. fake(191, 24), "rk_test_51" .. fake(192, 97) },
		nomatch = { "sk_test_123", "pk_test_" .. fake(193, 24) },
	},
}

M.stripe_webhook_secret = dlp.detector{
	name = "stripe_webhook_secret",
	description = "Stripe (and Svix-style) webhook signing secrets (whsec_)",
	regex = [[(?<![A-Za-z0-9_])(whsec_[A-Za-z0-9+/=]{32,88})(?![A-Za-z0-9_+/=])]],
	keywords = { "whsec_" },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 8, keep_last = 0 },
	examples = {
		match = { "STRIPE_WEBHOOK_SECRET=whsec_" .. fake(201, 32), "endpoint_secret = 'whsec_" .. fake(202, 32) .. "'" },
		nomatch = { "whsec_" .. fake(203, 20), "whsec_................................" },
	},
}

-- ---- Google ----

M.google_api_key = dlp.detector{
	name = "google_api_key",
	description = "Google API keys (AIza + 35)",
	regex = [[(?<![A-Za-z0-9_-])(AIza[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])]],
	keywords = { "AIza" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "GOOGLE_API_KEY=AIza" .. fake(211, 35, URLSAFE), "{\"apiKey\": \"AIza" .. fake(212, 35, URLSAFE) .. "\"}" },
		nomatch = { "AIza" .. fake(213, 30, URLSAFE), "AIza" .. fake(214, 35, URLSAFE) .. "abc" },
	},
}

M.google_oauth_client_secret = dlp.detector{
	name = "google_oauth_client_secret",
	description = "Google OAuth client secrets (GOCSPX- + 28)",
	regex = [[(?<![A-Za-z0-9_-])(GOCSPX-[A-Za-z0-9_-]{28})(?![A-Za-z0-9_-])]],
	keywords = { "GOCSPX-" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "\"client_secret\":\"GOCSPX-" .. fake(221, 28, URLSAFE) .. "\"", "GOCSPX-" .. fake(222, 28, URLSAFE) },
		nomatch = { "GOCSPX-" .. fake(223, 20, URLSAFE), "GOCSPX-<client-secret>" },
	},
}

M.google_oauth_access_token = dlp.detector{
	name = "google_oauth_access_token",
	description = "Google OAuth 2.0 access tokens (ya29.)",
	regex = [[(?<![A-Za-z0-9_.-])(ya29\.[0-9A-Za-z_-]{30,2048})(?![A-Za-z0-9_-])]],
	keywords = { "ya29." },
	group = 1,
	entropy = 3.8,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "Authorization: Bearer ya29." .. fake(231, 150, URLSAFE), "{\"access_token\": \"ya29.a0" .. fake(232, 200, URLSAFE) .. "\"}" },
		nomatch = { "ya29.short", "ya29.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
	},
}

-- A service-account key file: the private_key field of JSON that names
-- itself a service account (the field order varies, so the keyword is
-- the type or the gserviceaccount.com e-mail within 8 KiB).
M.gcp_service_account_key = dlp.detector{
	name = "gcp_service_account_key",
	description = "Google Cloud service account key files (JSON with \"type\": \"service_account\" and a private_key)",
	regex = [["private_key"\s*:\s*"(-----BEGIN (?:RSA )?PRIVATE KEY-----(?=[^"]{64})(?:[^"\\]|\\.)*?-----END (?:RSA )?PRIVATE KEY-----(?:\\n|\n)?)"]],
	keywords = { "service_account", "gserviceaccount.com" },
	window = 8192,
	group = 1,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = {
			"{\"type\": \"service_account\", \"project_id\": \"acme-prod\", \"private_key_id\": \"" .. fake(241, 40, HEX)
				.. "\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n" .. fake(242, 64, B64) .. "\\n" .. fake(243, 64, B64)
				.. "\\n-----END PRIVATE KEY-----\\n\", \"client_email\": \"ci@acme-prod.iam.gserviceaccount.com\"}",
			-- as JSON reads once its escapes are decoded, keys sorted (type last)
			"{\"client_email\": \"ci@acme-prod.iam.gserviceaccount.com\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\n"
				.. fake(244, 64, B64) .. "\n" .. fake(245, 64, B64) .. "\n-----END PRIVATE KEY-----\n\", \"type\": \"service_account\"}",
		},
		nomatch = {
			"{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n\"}",
			"{\"type\": \"service_account\", \"private_key\": \"\"}",
			"{\"type\": \"authorized_user\", \"client_secret\": \"d-FL95Q19q7MQmFpd7hHD0Ty\"}",
		},
	},
}

-- ---- Azure ----

M.azure_storage_account_key = dlp.detector{
	name = "azure_storage_account_key",
	description = "Azure storage account keys (AccountKey= in connection strings, AZURE_STORAGE_KEY=...): 86 base64 + ==",
	regex = [[(?i)(?:AccountKey|azure[_.-]?storage[_.-]?(?:account[_.-]?)?(?:access[_.-]?)?key)["']?\s{0,3}[:=]\s{0,3}["']?([A-Za-z0-9+/]{86}==)]],
	keywords = { "AccountKey", "azure_storage", "azure-storage", "azurestorage", "azure.storage" },
	group = 1,
	entropy = 4.5,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey=" .. fake(251, 86, B64) .. "==;EndpointSuffix=core.windows.net",
			"AZURE_STORAGE_KEY=" .. fake(252, 86, B64) .. "==",
		},
		nomatch = {
			"AccountKey=" .. fake(253, 60, B64) .. "==",
			"DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=<account-key>",
		},
	},
}

M.azure_sas_token = dlp.detector{
	name = "azure_sas_token",
	description = "Azure shared access signatures: sig= next to a signed version sv=20..",
	regex = [[(?<![A-Za-z0-9_])sig=([A-Za-z0-9%+/]{40,120}={0,2})(?![A-Za-z0-9%+/=])]],
	keywords = { "sig=" },
	context = { words = { "sv=20" }, distance = 600 },
	group = 1,
	entropy = 4.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"https://acme.blob.core.windows.net/backups/db.bak?sp=r&st=2024-01-01T00:00:00Z&se=2024-12-31T00:00:00Z&spr=https&sv=2022-11-02&sr=b&sig="
				.. fake(261, 40) .. "%2B" .. fake(262, 3) .. "%3D",
			"?sv=2021-06-08&ss=bfqt&srt=sco&sp=rwdlacupiytfx&se=2030-01-01T00:00:00Z&sig=" .. fake(263, 43, B64) .. "=",
		},
		nomatch = {
			"https://cdn.example.net/img.png?sig=" .. fake(264, 43) .. "&w=200",     -- no sv=: not a SAS
			"?sv=2022-11-02&sr=b&sig=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX%3D",
		},
	},
}

M.azure_shared_access_key = dlp.detector{
	name = "azure_shared_access_key",
	description = "Azure Service Bus / Event Hubs / IoT Hub SharedAccessKey= in connection strings",
	regex = [[(?i)SharedAccessKey\s{0,3}=\s{0,3}([A-Za-z0-9+/]{43}=)]],
	keywords = { "SharedAccessKey" },
	group = 1,
	entropy = 4.0,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" .. fake(271, 43, B64) .. "=",
			"HostName=acme.azure-devices.net;DeviceId=d1;SharedAccessKey=" .. fake(272, 43, B64) .. "=",
		},
		nomatch = {
			"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=<key>",
			"SharedAccessKey=" .. fake(273, 20, B64) .. "=",
		},
	},
}

-- ---- Twilio (no literal prefix worth a keyword: SK/AC are two letters) ----

M.twilio_api_key = dlp.detector{
	name = "twilio_api_key",
	description = "Twilio API key SIDs (SK + 32 hex) within 1 KiB of the word twilio",
	regex = [[(?<![A-Za-z0-9])(SK[0-9a-f]{32})(?![A-Za-z0-9])]],
	keywords = { "twilio" },
	window = 1024,
	group = 1,
	severity = "high",
	confidence = "medium",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "TWILIO_API_KEY=SK" .. fake(281, 32, HEX), "twilio.Client(\"SK" .. fake(282, 32, HEX) .. "\", secret)" },
		nomatch = { "TWILIO_API_KEY=SK" .. fake(283, 31, HEX), "SK" .. fake(284, 32, HEX) .. " (no vendor named)" },
	},
}

M.twilio_account_sid = dlp.detector{
	name = "twilio_account_sid",
	description = "Twilio account SIDs (AC + 32 hex) within 1 KiB of the word twilio: an identifier that pairs with a token",
	regex = [[(?<![A-Za-z0-9])(AC[0-9a-f]{32})(?![A-Za-z0-9])]],
	keywords = { "twilio" },
	window = 1024,
	group = 1,
	severity = "medium",
	confidence = "medium",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "TWILIO_ACCOUNT_SID=AC" .. fake(291, 32, HEX), "api.twilio.com/2010-04-01/Accounts/AC" .. fake(292, 32, HEX) .. "/Messages.json" },
		nomatch = { "TWILIO_ACCOUNT_SID=AC" .. fake(293, 32, UPPER_ALNUM), "AC" .. fake(294, 32, HEX) },
	},
}

M.twilio_auth_token = dlp.detector{
	name = "twilio_auth_token",
	description = "Twilio auth tokens: 32 hex assigned to a twilio...token or auth_token name near the word twilio",
	regex = [[(?i)(?:twilio[\w.-]{0,20}?token|auth[_.-]?token)["']?\s{0,3}[:=]\s{0,3}["']?([0-9a-f]{32})(?![0-9a-z])]],
	keywords = { "twilio" },
	window = 512,
	group = 1,
	entropy = 3.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = { "TWILIO_AUTH_TOKEN=" .. fake(301, 32, HEX), "# twilio\nauth_token = '" .. fake(302, 32, HEX) .. "'" },
		nomatch = { "TWILIO_AUTH_TOKEN=your_auth_token", "auth_token = '" .. fake(303, 32, HEX) .. "' # some other vendor" },
	},
}

-- ---- Messaging, package registries, CI/CD ----

M.sendgrid_api_key = dlp.detector{
	name = "sendgrid_api_key",
	description = "SendGrid API keys (SG. + 22 + . + 43)",
	regex = [[(?<![A-Za-z0-9_.-])(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])]],
	keywords = { "SG." },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "SENDGRID_API_KEY=SG." .. fake(311, 22, URLSAFE) .. "." .. fake(312, 43, URLSAFE), "apikey: 'SG." .. fake(313, 22, URLSAFE) .. "." .. fake(314, 43, URLSAFE) .. "'" },
		nomatch = { "SG." .. fake(315, 22, URLSAFE), "SG.example.com" },
	},
}

M.mailgun_api_key = dlp.detector{
	name = "mailgun_api_key",
	description = "Mailgun API keys (key- + 32 hex, or the hex-hex-hex private key next to the word mailgun)",
	regex = [[(?|(?<![\w-])(key-[0-9a-f]{32})(?![\w-])|(?i:mailgun[\w.-]{0,25}?)["']?\s{0,3}[:=]\s{0,3}["']?([0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})(?![\w-]))]],
	keywords = { "key-", "mailgun" },
	group = 1,
	entropy = 3.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = { "api:key-" .. fake(321, 32, HEX), "MAILGUN_API_KEY=" .. fake(322, 32, HEX) .. "-" .. fake(323, 8, HEX) .. "-" .. fake(324, 8, HEX) },
		nomatch = { "key-value store", "key-00000000000000000000000000000000", "monkey-" .. fake(325, 32, HEX) },
	},
}

M.npm_token = dlp.detector{
	name = "npm_token",
	description = "npm access tokens (npm_ + 36)",
	regex = [[(?<![A-Za-z0-9_])(npm_[A-Za-z0-9]{36})(?![A-Za-z0-9_])]],
	keywords = { "npm_" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "//registry.npmjs.org/:_authToken=npm_" .. fake(331, 36), "NPM_TOKEN=npm_" .. fake(332, 36) },
		nomatch = { "npm_config_registry=https://registry.npmjs.org/", "npm_" .. fake(333, 30) },
	},
}

M.pypi_token = dlp.detector{
	name = "pypi_token",
	description = "PyPI and TestPyPI upload tokens (pypi-AgEIcHlwaS5vcmc..., pypi-AgENdGVzdC5weXBpLm9yZw...)",
	regex = [[(?<![A-Za-z0-9_-])(pypi-Ag(?:EIcHlwaS5vcmc|ENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,300})(?![A-Za-z0-9_-])]],
	keywords = { "pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw" },
	window = 512,
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 8, keep_last = 0 },
	examples = {
		match = { "password = pypi-AgEIcHlwaS5vcmc" .. fake(341, 140, URLSAFE), "TWINE_PASSWORD=pypi-AgENdGVzdC5weXBpLm9yZw" .. fake(342, 100, URLSAFE) },
		nomatch = { "pypi-AgEIcHlwaS5vcmc" .. fake(343, 20, URLSAFE), "pypi-" .. fake(344, 120, URLSAFE) },
	},
}

M.dockerhub_pat = dlp.detector{
	name = "dockerhub_pat",
	description = "Docker Hub personal and organization access tokens (dckr_pat_, dckr_oat_)",
	regex = [[(?<![\w-])(dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,36})(?![\w-])]],
	keywords = { "dckr_pat_", "dckr_oat_" },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 8, keep_last = 0 },
	examples = {
		match = { "docker login -u acme -p dckr_pat_" .. fake(351, 27, URLSAFE), "DOCKERHUB_TOKEN=dckr_oat_" .. fake(352, 32, URLSAFE) },
		nomatch = { "dckr_pat_" .. fake(353, 12), "dckr_pat_xxxxxxxxxxxxxxxxxxxxxxxxxxx" },
	},
}

M.heroku_api_key = dlp.detector{
	name = "heroku_api_key",
	description = "Heroku API keys: a UUID assigned to a heroku...key/token/auth/secret name (not HEROKU_APP_ID), or the HRKU-AA token format",
	regex = [[(?|(?i:heroku[\w.-]{0,25}?(?:key|token|auth|secret|pass)[\w.-]{0,10}?)["']?\s{0,3}[:=]\s{0,3}["']?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?![\w-])|(?<![\w-])(HRKU-AA[0-9A-Za-z_-]{58})(?![\w-]))]],
	keywords = { "heroku", "HRKU-AA" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"HEROKU_API_KEY=" .. fake(361, 8, HEX) .. "-" .. fake(362, 4, HEX) .. "-" .. fake(363, 4, HEX) .. "-" .. fake(364, 4, HEX) .. "-" .. fake(365, 12, HEX),
			"token: HRKU-AA" .. fake(366, 58, URLSAFE),
		},
		nomatch = {
			"request_id=" .. fake(367, 8, HEX) .. "-" .. fake(368, 4, HEX) .. "-" .. fake(369, 4, HEX) .. "-" .. fake(370, 4, HEX) .. "-" .. fake(371, 12, HEX),
			"HEROKU_APP_NAME=acme-prod",
			"HEROKU_APP_ID=" .. fake(372, 8, HEX) .. "-" .. fake(373, 4, HEX) .. "-" .. fake(374, 4, HEX) .. "-" .. fake(375, 4, HEX) .. "-" .. fake(376, 12, HEX),
		},
	},
}

M.digitalocean_token = dlp.detector{
	name = "digitalocean_token",
	description = "DigitalOcean personal access (dop_v1_), OAuth (doo_v1_) and refresh (dor_v1_) tokens",
	regex = [[(?<![A-Za-z0-9_])(do[opr]_v1_[a-f0-9]{64})(?![A-Za-z0-9])]],
	keywords = { "dop_v1_", "doo_v1_", "dor_v1_" },
	group = 1,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "DIGITALOCEAN_TOKEN=dop_v1_" .. fake(381, 64, HEX), "doctl auth init -t doo_v1_" .. fake(382, 64, HEX) },
		nomatch = { "dop_v1_" .. fake(383, 40, HEX), "dop_v2_" .. fake(384, 64, HEX) },
	},
}

M.shopify_token = dlp.detector{
	name = "shopify_token",
	description = "Shopify access tokens and secrets (shpat_, shpss_, shpca_, shppa_)",
	regex = [[(?<![A-Za-z0-9_])(shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32})(?![A-Za-z0-9])]],
	keywords = { "shpat_", "shpss_", "shpca_", "shppa_" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "X-Shopify-Access-Token: shpat_" .. fake(391, 32, HEX), "SHOPIFY_SECRET=shpss_" .. fake(392, 32, HEX) },
		nomatch = { "shpat_" .. fake(393, 32, LETTERS), "shpxx_" .. fake(394, 32, HEX) },
	},
}

M.atlassian_api_token = dlp.detector{
	name = "atlassian_api_token",
	description = "Atlassian (Jira/Confluence) API tokens (ATATT3, ATCTT3) and Bitbucket app passwords (ATBB)",
	regex = [[(?<![\w-])(AT[AC]TT3[A-Za-z0-9_=-]{150,250}|ATBB[A-Za-z0-9]{32,40})(?![\w=-])]],
	keywords = { "ATATT3", "ATCTT3", "ATBB" },
	group = 1,
	entropy = 4.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "JIRA_API_TOKEN=ATATT3xFfGF0" .. fake(401, 180, URLSAFE), "bitbucket app password ATBB" .. fake(402, 32) },
		nomatch = { "ATATT3" .. fake(403, 60, URLSAFE), "ATBB" .. fake(404, 10) },
	},
}

M.discord_bot_token = dlp.detector{
	name = "discord_bot_token",
	description = "Discord bot tokens (base64 user id . 6 . 27-38) within 1 KiB of the word discord",
	regex = [[(?<![\w-])([MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38})(?![\w-])]],
	keywords = { "discord" },
	window = 1024,
	group = 1,
	entropy = 4.0,
	severity = "high",
	confidence = "medium",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = {
			"DISCORD_TOKEN=MTA" .. fake(411, 23, URLSAFE) .. "." .. fake(412, 6, URLSAFE) .. "." .. fake(413, 38, URLSAFE),
			"discord_client.run('OD" .. fake(414, 22, URLSAFE) .. "." .. fake(415, 6, URLSAFE) .. "." .. fake(416, 27, URLSAFE) .. "')",
		},
		nomatch = {
			"DISCORD_TOKEN=XTA" .. fake(417, 23, URLSAFE) .. "." .. fake(418, 6, URLSAFE) .. "." .. fake(419, 38, URLSAFE),
			"MTA" .. fake(420, 23, URLSAFE) .. "." .. fake(421, 6, URLSAFE) .. "." .. fake(422, 38, URLSAFE),  -- no vendor named
		},
	},
}

M.discord_webhook_url = dlp.detector{
	name = "discord_webhook_url",
	description = "Discord webhook URLs (discord.com/api/webhooks/ID/TOKEN)",
	regex = [[discord(?:app)?\.com/api/webhooks/([0-9]{17,20}/[A-Za-z0-9_-]{60,68})(?![A-Za-z0-9_-])]],
	keywords = { "discord" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"https://discord.com/api/webhooks/" .. fake(431, 19, DIGITS) .. "/" .. fake(432, 68, URLSAFE),
			"webhook: https://discordapp.com/api/webhooks/" .. fake(433, 18, DIGITS) .. "/" .. fake(434, 68, URLSAFE),
		},
		nomatch = { "https://discord.com/api/webhooks/123/abc", "https://discord.com/channels/" .. fake(435, 19, DIGITS) .. "/" .. fake(436, 19, DIGITS) },
	},
}

M.telegram_bot_token = dlp.detector{
	name = "telegram_bot_token",
	description = "Telegram bot tokens (bot id : 35 characters) near the word bot or telegram",
	regex = [[(?:(?<=bot)|(?<![\w:/]))([0-9]{8,10}:[A-Za-z0-9_-]{35})(?![\w-])]],
	keywords = { "telegram", "bot" },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"TELEGRAM_BOT_TOKEN=" .. fake(441, 10, DIGITS) .. ":AA" .. fake(442, 33, URLSAFE),
			"https://api.telegram.org/bot" .. fake(443, 9, DIGITS) .. ":AA" .. fake(444, 33, URLSAFE) .. "/sendMessage",
		},
		nomatch = {
			"bot token " .. fake(445, 10, DIGITS) .. ":AA" .. fake(446, 20, URLSAFE),
			"time " .. fake(447, 10, DIGITS) .. ":AA" .. fake(448, 33, URLSAFE),     -- no bot/telegram word
		},
	},
}

-- ---- AI platforms ----

M.openai_api_key = dlp.detector{
	name = "openai_api_key",
	description = "OpenAI API keys (sk-proj-, sk-svcacct-, sk-admin-, legacy sk-...T3BlbkFJ...)",
	regex = [[(?<![\w-])(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})(?![\w-])]],
	keywords = { "sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ" },
	group = 1,
	entropy = 4.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 8, keep_last = 0 },
	examples = {
		match = {
			"OPENAI_API_KEY=sk-proj-" .. fake(451, 74, URLSAFE) .. "T3BlbkFJ" .. fake(452, 74, URLSAFE),
			"openai.api_key = \"sk-" .. fake(453, 20) .. "T3BlbkFJ" .. fake(454, 20) .. "\"",
		},
		nomatch = { "sk-proj-" .. fake(455, 20), "sk-" .. fake(456, 48) },
	},
}

M.anthropic_api_key = dlp.detector{
	name = "anthropic_api_key",
	description = "Anthropic API and admin keys (sk-ant-api03-, sk-ant-admin01-, ...)",
	regex = [[(?<![\w-])(sk-ant-(?:api|admin|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{80,120})(?![\w-])]],
	keywords = { "sk-ant-" },
	group = 1,
	entropy = 4.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 10, keep_last = 0 },
	examples = {
		match = { "ANTHROPIC_API_KEY=sk-ant-api03-" .. fake(461, 93, URLSAFE) .. "AA", "x-api-key: sk-ant-admin01-" .. fake(462, 93, URLSAFE) .. "AA" },
		nomatch = { "sk-ant-api03-" .. fake(463, 30, URLSAFE), "sk-ant-" .. fake(464, 95, URLSAFE) },
	},
}

M.huggingface_token = dlp.detector{
	name = "huggingface_token",
	description = "Hugging Face user (hf_) and organization (api_org_) tokens, 34 characters",
	regex = [[(?<![A-Za-z0-9_])((?:hf_|api_org_)[A-Za-z0-9]{34})(?![A-Za-z0-9_])]],
	keywords = { "hf_", "api_org_" },
	group = 1,
	entropy = 4.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "HF_TOKEN=hf_" .. fake(471, 34, LETTERS), "huggingface-cli login --token hf_" .. fake(472, 34) },
		nomatch = { "hf_transformerslibraryconfiguration1", "hf_" .. fake(473, 20, LETTERS), "from huggingface_hub import hf_hub_download" },
	},
}

M.databricks_token = dlp.detector{
	name = "databricks_token",
	description = "Databricks personal access tokens (dapi + 32 hex)",
	regex = [[(?<![A-Za-z0-9_])(dapi[a-f0-9]{32}(?:-[0-9])?)(?![\w-])]],
	keywords = { "dapi" },
	group = 1,
	entropy = 3.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "DATABRICKS_TOKEN=dapi" .. fake(481, 32, HEX), "token = dapi" .. fake(482, 32, HEX) .. "-2" },
		nomatch = { "dapi" .. fake(483, 20, HEX), "dapi" .. fake(484, 32, LETTERS) },
	},
}

-- ---- Observability ----

M.datadog_api_key = dlp.detector{
	name = "datadog_api_key",
	description = "Datadog API (32 hex) and application (40 hex) keys assigned to a datadog.../DD_API_KEY/DD_APP_KEY name",
	regex = [[(?i)(?:datadog[\w.-]{0,25}?(?:key|token)|\bdd[_-](?:api|app(?:lication)?)[_-]?key)["']?\s{0,3}[:=]\s{0,3}["']?([a-f0-9]{40}|[a-f0-9]{32})(?![a-z0-9])]],
	keywords = { "datadog", "dd_api", "dd-api", "dd_app", "dd-app" },
	group = 1,
	entropy = 3.0,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = { "DD_API_KEY=" .. fake(491, 32, HEX), "datadog_app_key: \"" .. fake(492, 40, HEX) .. "\"", "DD-API-KEY: " .. fake(493, 32, HEX) },
		nomatch = { "DD_API_KEY=<your-api-key>", "datadog_site: datadoghq.eu", "dd_api_key=" .. fake(494, 31, HEX),
			"datadog.trace_id: " .. fake(495, 32, HEX) },
	},
}

M.newrelic_api_key = dlp.detector{
	name = "newrelic_api_key",
	description = "New Relic user API keys (NRAK-) and insert keys (NRII-)",
	regex = [[(?<![\w-])(NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9_-]{32})(?![\w-])]],
	keywords = { "NRAK-", "NRII-" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "NEW_RELIC_API_KEY=NRAK-" .. fake(501, 27, UPPER_ALNUM), "X-Insert-Key: NRII-" .. fake(502, 32, URLSAFE) },
		nomatch = { "NRAK-" .. fake(503, 20, UPPER_ALNUM), "NRAK-" .. fake(504, 27, LOWER_ALNUM) },
	},
}

-- ---- Payments ----

M.square_access_token = dlp.detector{
	name = "square_access_token",
	description = "Square access tokens (sq0atp-, EAAA...)",
	regex = [[(?<![\w-])(sq0atp-[0-9A-Za-z_-]{22}|EAAA[A-Za-z0-9_-]{60})(?![\w-])]],
	keywords = { "sq0atp-", "EAAA" },
	group = 1,
	entropy = 3.5,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "SQUARE_ACCESS_TOKEN=EAAA" .. fake(511, 60, URLSAFE), "sq0atp-" .. fake(512, 22, URLSAFE) },
		nomatch = { "sq0atp-" .. fake(513, 10, URLSAFE), "EAAA" .. fake(514, 30, URLSAFE) },
	},
}

M.square_oauth_secret = dlp.detector{
	name = "square_oauth_secret",
	description = "Square OAuth application secrets (sq0csp-)",
	regex = [[(?<![\w-])(sq0csp-[0-9A-Za-z_-]{43})(?![\w-])]],
	keywords = { "sq0csp-" },
	group = 1,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "application_secret=sq0csp-" .. fake(521, 43, URLSAFE), "\"sq0csp-" .. fake(522, 43, URLSAFE) .. "\"" },
		nomatch = { "sq0csp-" .. fake(523, 20, URLSAFE), "sq0xyz-" .. fake(524, 43, URLSAFE) },
	},
}

M.braintree_access_token = dlp.detector{
	name = "braintree_access_token",
	description = "PayPal Braintree production access tokens (access_token$production$...$...)",
	regex = [[(access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32})(?![0-9a-z])]],
	keywords = { "access_token$production$" },
	group = 1,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 16, keep_last = 0 },
	examples = {
		match = {
			"BRAINTREE_TOKEN=access_token$production$" .. fake(531, 16, LOWER_ALNUM) .. "$" .. fake(532, 32, HEX),
			"gateway = Gateway(access_token='access_token$production$" .. fake(533, 16, LOWER_ALNUM) .. "$" .. fake(534, 32, HEX) .. "')",
		},
		nomatch = {
			"access_token$sandbox$" .. fake(535, 16, LOWER_ALNUM) .. "$" .. fake(536, 32, HEX),
			"access_token$production$" .. fake(537, 16, LOWER_ALNUM),
		},
	},
}

-- ---- Identity, infrastructure ----

M.okta_api_token = dlp.detector{
	name = "okta_api_token",
	description = "Okta API tokens (00 + 40) near the word okta or the SSWS scheme",
	regex = [[(?<![\w-])(00[A-Za-z0-9_-]{40})(?![\w-])]],
	keywords = { "okta", "SSWS" },
	group = 1,
	entropy = 3.8,
	severity = "high",
	confidence = "medium",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = { "OKTA_API_TOKEN=00" .. fake(541, 40, URLSAFE), "Authorization: SSWS 00" .. fake(542, 40, URLSAFE) },
		nomatch = { "OKTA_API_TOKEN=00" .. fake(543, 30, URLSAFE), "okta id 000000000000000000000000000000000000000000" },
	},
}

M.vault_token = dlp.detector{
	name = "vault_token",
	description = "HashiCorp Vault service (hvs.), batch (hvb.) and recovery (hvr.) tokens",
	regex = [[(?<![\w.])(hv[sbr]\.[A-Za-z0-9_-]{24,300})(?![\w-])]],
	keywords = { "hvs.", "hvb.", "hvr." },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "VAULT_TOKEN=hvs." .. fake(551, 24, URLSAFE), "X-Vault-Token: hvb." .. fake(552, 138, URLSAFE) },
		nomatch = { "hvs." .. fake(553, 10), "https://hvs.example.com/path" },
	},
}

M.terraform_cloud_token = dlp.detector{
	name = "terraform_cloud_token",
	description = "Terraform Cloud / Enterprise API tokens (14 . atlasv1 . 60-70)",
	regex = [[(?<![A-Za-z0-9])([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})(?![\w=-])]],
	keywords = { ".atlasv1." },
	group = 1,
	entropy = 3.5,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "token = \"" .. fake(561, 14) .. ".atlasv1." .. fake(562, 67, URLSAFE) .. "\"", "TFE_TOKEN=" .. fake(563, 14) .. ".atlasv1." .. fake(564, 64, URLSAFE) },
		nomatch = { fake(565, 14) .. ".atlasv1.short", fake(566, 14) .. ".atlasv2." .. fake(567, 67, URLSAFE) },
	},
}

-- ---- Keys ----

local function pem(label, seed, lines)
	local t = { "-----BEGIN " .. label .. "-----" }
	for i = 1, lines do
		t[#t + 1] = fake(seed + i, 64, B64)
	end
	t[#t + 1] = fake(seed, 24, B64) .. "=="
	t[#t + 1] = "-----END " .. label .. "-----"
	return table.concat(t, "\n")
end

M.private_key = dlp.detector{
	name = "private_key",
	description = "PEM private keys (RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8, PGP PRIVATE KEY BLOCK, SSH2): "
		.. "the BEGIN line through the matching END line; a BEGIN with 200+ characters of key and no END is "
		.. "reported too (a truncated paste)",
	regex = [[-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP |SSH2 ENCRYPTED )?PRIVATE KEY(?: BLOCK)?)-----]]
		.. [[(?:(?=[\s\S]{0,400}?[A-Za-z0-9+/]{40})(?:(?!-----)[\s\S])*?-----END \1-----|[A-Za-z0-9+/=\s\\]{200,}+)]],
	keywords = { "PRIVATE KEY" },
	entropy = 4.5,
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = {
			pem("RSA PRIVATE KEY", 571, 8),
			"key: |\n" .. pem("OPENSSH PRIVATE KEY", 581, 6),
			pem("EC PRIVATE KEY", 591, 3),
			pem("PGP PRIVATE KEY BLOCK", 601, 10),
			pem("ENCRYPTED PRIVATE KEY", 611, 5),
			"\"private_key\": \"" .. pem("PRIVATE KEY", 621, 4):gsub("\n", "\\n") .. "\"",
		},
		nomatch = {
			pem("PUBLIC KEY", 631, 6),
			pem("CERTIFICATE", 641, 6),
			"-----BEGIN RSA PRIVATE KEY-----\n...your key here...\n-----END RSA PRIVATE KEY-----",
			"-----BEGIN PRIVATE KEY-----\n" .. string.rep("A", 64) .. "\n" .. string.rep("A", 64) .. "\n-----END PRIVATE KEY-----",
		},
	},
}

M.putty_private_key = dlp.detector{
	name = "putty_private_key",
	description = "PuTTY private key files (.ppk, versions 2 and 3)",
	regex = [[PuTTY-User-Key-File-[23]: [\w@.-]+\r?\n[\s\S]{0,4000}?Private-Lines: [0-9]+\r?\n(?:[A-Za-z0-9+/=]{1,64}\r?\n){0,99}[A-Za-z0-9+/=]{16,64}]],
	keywords = { "PuTTY-User-Key-File-" },
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = {
			"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ci\nPublic-Lines: 2\n" .. fake(651, 64, B64) .. "\n"
				.. fake(652, 16, B64) .. "\nPrivate-Lines: 1\n" .. fake(653, 44, B64) .. "\nPrivate-MAC: " .. fake(654, 64, HEX) .. "\n",
			"PuTTY-User-Key-File-2: ssh-rsa\r\nEncryption: aes256-cbc\r\nComment: x\r\nPublic-Lines: 1\r\n" .. fake(655, 64, B64)
				.. "\r\nPrivate-Lines: 2\r\n" .. fake(656, 64, B64) .. "\r\n" .. fake(657, 64, B64) .. "\r\n",
		},
		nomatch = { "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", "Save as PuTTY-User-Key-File-2 format" },
	},
}

M.jwt = dlp.detector{
	name = "jwt",
	description = "JSON Web Tokens (eyJ header . eyJ payload . signature of 16+): a bearer credential while it is valid",
	regex = [[(?<![\w-])(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})(?![\w-])]],
	keywords = { "eyJ" },
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 10, keep_last = 0 },
	examples = {
		match = {
			"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFjbWUiLCJpYXQiOjE3MDAwMDAwMDB9." .. fake(661, 43, URLSAFE),
			"{\"id_token\":\"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2FjbWUuZXhhbXBsZSJ9." .. fake(662, 342, URLSAFE) .. "\"}",
			"token=eyJhbGciOiJFUzI1NiJ9.eyJ" .. fake(663, 1800, URLSAFE) .. "." .. fake(664, 86, URLSAFE),
		},
		nomatch = {
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",                                  -- a header alone
			"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",                      -- unsigned (alg none)
			"eyJhbGciOiJIUzI1NiJ9.notjson." .. fake(665, 43, URLSAFE),
		},
	},
}

-- ---- Passwords and generic secrets ----

-- Names that hold a secret; values in quotes or bare; the value must have
-- a digit and a letter, 8-1024 characters, and entropy >= 3.5 (about 12
-- different characters at least).
local SECRET_NAME = [[(?:p(?:assw(?:or)?d|wd|rivate[_.-]?key)|s(?:ecret|igning[_.-]?key)|token|a(?:pi[_.-]?key|ccess[_.-]?key|uth[_.-]?key)|c(?:lient[_.-]?secret|redentials?)|encryption[_.-]?key|master[_.-]?key)]]
local BARE = [=[[^\s"'`&,;<>(){}\[\]\\]]=]

M.generic_secret = dlp.detector{
	name = "generic_secret",
	description = "password/secret/token/api_key/... = value (quoted or bare, 8-1024 chars with a letter and a digit, "
		.. "entropy >= 3.5); placeholders, variable references, URLs, CSRF, pagination and push-device tokens are not reported",
	-- the lookahead is only for speed: the name is one run of [\w.-] (at
	-- most 62 long) right before the quote and the =, so prose fails at
	-- the end of each word instead of trying every name at every letter
	regex = [[(?i)(?<![\w.-])(?=[\w.-]{1,64}+["']?\s{0,3}[:=])[\w.-]{0,40}?]] .. SECRET_NAME
		.. [[s?(?:[_.-]?(?:key|value|hash|str|string|b64|base64|raw|data|text|[0-9]))?["']?\s{0,3}(?:=|:|:=|=>)\s{0,3}]]
		.. [[(?|"((?=[^"\r\n]{0,199}[0-9])(?=[^"\r\n]{0,199}[a-z])[^"\r\n]{8,1024})"]]
		.. [[|'((?=[^'\r\n]{0,199}[0-9])(?=[^'\r\n]{0,199}[a-z])[^'\r\n]{8,1024})']]
		.. [[|((?=]] .. BARE .. [[{0,199}[0-9])(?=]] .. BARE .. [[{0,199}[a-z])]] .. BARE .. [[{8,1024}))]],
	-- every spelling of every name in SECRET_NAME (client_secret has "secret")
	keywords = { "passw", "pwd", "secret", "token", "apikey", "api_key", "api-key", "api.key", "access_key",
		"access-key", "access.key", "accesskey", "private_key", "private-key", "private.key", "privatekey",
		"credential", "auth_key", "auth-key", "auth.key", "authkey", "signing_key", "signing-key", "signing.key",
		"signingkey", "encryption_key", "encryption-key", "encryption.key", "encryptionkey", "master_key",
		"master-key", "master.key", "masterkey" },
	-- the match starts at the name, at most 40 characters and "client_"
	-- before the keyword, and never after it
	window = { before = 48, after = 0 },
	group = 1,
	entropy = 3.5,
	allow = {
		{ stopwords = PLACEHOLDERS },
		{
			regexes = {
				[=[^\$[\w{(]]=],                                     -- $VAR, ${VAR}, $(cmd)
				[[(?i)^(?:true|false|null|none|nil|undefined)$]],
				[[(?i)^(?:https?|ftp|file|s3|gs)://]],             -- a URL, not a secret
				[[^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$]],             -- settings.SECRET_KEY2, os.env.X
				[[^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$]],               -- a constant's name: P11_KIT_URI_FOR_OBJECT
				[[^(.)\1+$]],                                      -- one character repeated
			},
			target = "secret",
		},
		{
			-- CSRF and anti-forgery fields, pagination cursors, push-notification device
			-- ids, model token counts: names with "token" that hold no credential
			regexes = { [[(?i)^[\w.-]*?(?:csrf|xsrf|authenticity|nonce|captcha|page_?token|next_?token|continuation|cursor|sync_?token|(?:device|push|fcm|apns|registration|notification)_?token|token_?(?:type|count|usage|limit)|max_?tokens)]],
				[=[(?i)^_token["']?\s*[:=]]=] },
			target = "match",
		},
	},
	severity = "medium",
	confidence = "low",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = {
			"DB_PASSWORD=" .. fake(671, 20),
			"{\"client_secret\": \"" .. fake(672, 32) .. "\"}",
			"api_key = '" .. fake(673, 24, URLSAFE) .. "'",
			"password: s3cr3tP@ssw0rd!2024",
			"export SERVICE_TOKEN=" .. fake(674, 40, HEX),
			"jwt.signing.key: " .. fake(679, 32),
			"MASTERKEY=" .. fake(680, 24),
		},
		nomatch = {
			"password = \"changeme123\"",
			"api_key: ${API_KEY}",
			"secret = \"<your-secret-here>\"",
			"token: xxxxxxxxxxxxxxxxxxxx",
			"password = os.environ['DB_PASSWORD']",
			"URI_FOR_OBJECT_ON_TOKEN =\n\t\tP11_KIT_URI_FOR_OBJECT | P11_KIT_URI_FOR_TOKEN",   -- a C constant
			"secret_key = settings.SECRET_KEY2",
			"csrfmiddlewaretoken=" .. fake(675, 64),
			"{\"nextPageToken\": \"" .. fake(676, 40) .. "\"}",
			"{\"deviceToken\": \"" .. fake(678, 64, HEX) .. "\"}",
			"password = 'Tr0ub4dor&3'",                      -- entropy under 3.5
			"password_reset_url = https://acme.io/reset/" .. fake(677, 20),
		},
	},
}

local CREDS_IN_URL_ALLOW = {
	{ regexes = { PLACEHOLDER_PASSWORD }, target = "secret" },
	{ stopwords = { "${", "{{", "<", "****", "xxxx", "changeme", "example", "placeholder", "your_", "your-" } },
	{ regexes = { [[(?i)@(?:[\w-]+\.)*example\.(?:com|org|net)(?![\w.-])]] }, target = "match" },
}

M.url_basic_auth = dlp.detector{
	name = "url_basic_auth",
	description = "Credentials in URLs (scheme://user:password@host) for schemes other than databases "
		.. "(db_connection_string covers those); placeholder passwords are not reported",
	regex = [[(?i)(?<![a-z0-9+.-])(?!(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|oracle|clickhouse|cockroachdb|couchdb|neo4j(?:\+s)?|cassandra|jdbc)[+:])]]
		.. [[[a-z][a-z0-9+.-]{1,20}://[^\s:/?#@"'<>\\]{1,64}:([^\s/?#@"'<>\\]{1,128})@[a-z0-9][a-z0-9.-]*]],
	keywords = { "://" },
	group = 1,
	allow = CREDS_IN_URL_ALLOW,
	severity = "high",
	confidence = "medium",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = {
			"git remote add origin https://deploy:" .. fake(681, 16) .. "@git.acme.io/app.git",
			"HTTP_PROXY=http://jsmith:Winter2024!@proxy.corp.acme.com:3128",
			"ftp://backup:" .. fake(682, 12) .. "@ftp.acme.io/dumps",
		},
		nomatch = {
			"https://user:password@host.acme.io/",           -- placeholder
			"https://admin:${ADMIN_PASSWORD}@acme.io",
			"https://bob:" .. fake(683, 12) .. "@api.example.com/x",
			"https://acme.io:8443/path",
			"postgres://app:" .. fake(684, 16) .. "@db.acme.io/prod",    -- a database: the other detector
		},
	},
}

M.db_connection_string = dlp.detector{
	name = "db_connection_string",
	description = "Database connection strings with a password: postgres://, mysql://, mongodb(+srv)://, redis://, "
		.. "amqp://, mssql://..., jdbc:...password=, and Server=...;Password=... (ADO.NET/ODBC)",
	regex = [[(?i)(?|(?<![a-z0-9])(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|oracle|clickhouse|cockroachdb|couchdb|neo4j(?:\+s)?|cassandra)(?:\+[a-z0-9]+)?://[^\s:/?#@"'<>\\]{0,64}:([^\s/?#@"'<>\\]{1,128})@[^\s/?#"'<>\\]+]]
		.. [[|(?<![a-z0-9])jdbc:[a-z0-9]+:[^\s"'<>]{0,200}?[?&;]password=([^\s&;"'<>]{1,128})]]
		.. [[|(?<![a-z0-9])(?:server|data source|host|hostname)\s?=[^;"'\n]{1,100};[^"'\n]{0,200}?(?<![a-z0-9])(?:password|pwd)\s?=([^;"'\n]{1,128}))]],
	keywords = { "postgres", "mysql", "mariadb", "mongodb", "redis", "amqp", "mssql", "sqlserver", "oracle",
		"clickhouse", "cockroach", "couchdb", "neo4j", "cassandra", "jdbc:", "password=", "pwd=" },
	window = 512,
	group = 1,
	allow = CREDS_IN_URL_ALLOW,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = {
			"DATABASE_URL=postgres://app:" .. fake(691, 20) .. "@db.internal.acme.io:5432/prod",
			"mongodb+srv://svc:" .. fake(692, 16) .. "@cluster0.ab1cd.mongodb.net/app?retryWrites=true",
			"REDIS_URL=redis://:" .. fake(693, 24) .. "@cache.acme.io:6379/0",
			"jdbc:postgresql://db.acme.io:5432/prod?user=app&password=" .. fake(694, 16),
			"Server=tcp:acme.database.windows.net,1433;Initial Catalog=prod;User ID=app;Password=" .. fake(695, 18) .. ";",
		},
		nomatch = {
			"postgres://postgres:postgres@localhost:5432/postgres",
			"mysql://root:${MYSQL_ROOT_PASSWORD}@db:3306/app",
			"mongodb://localhost:27017/app",
			"postgres://user:password@db.example.com/app",
			"Server=localhost;Database=app;Trusted_Connection=True;",
		},
	},
}

M.authorization_header = dlp.detector{
	name = "authorization_header",
	description = "HTTP Authorization values written out in a body (Bearer/Basic/Token/SSWS ...), e.g. a pasted curl command",
	regex = [[(?i)(?<![\w-])(?:proxy-)?authorization["']?\s{0,3}[:=]\s{0,3}["']?(?:bearer|basic|token|digest|ssws|sso-key)\s+([A-Za-z0-9._~+/-]{12,}=*)]],
	keywords = { "authorization" },
	group = 1,
	entropy = 3.0,
	allow = { stopwords = PLACEHOLDERS },
	severity = "high",
	confidence = "medium",
	mask = { keep_first = 0, keep_last = 0 },
	examples = {
		match = {
			"curl -H \"Authorization: Bearer " .. fake(701, 40, URLSAFE) .. "\" https://api.acme.io",
			"{\"headers\": {\"Authorization\": \"Basic YWRtaW46UzNjcjN0UGFzc3cwcmQ=\"}}",
		},
		nomatch = {
			"Authorization: Bearer <token>",
			"Authorization: Bearer $TOKEN",
			"Authorization: Bearer YOUR_TOKEN_HERE",
		},
	},
}

M.mapbox_secret_token = dlp.detector{
	name = "mapbox_secret_token",
	description = "Mapbox secret access tokens (sk.eyJ...)",
	regex = [[(?<![\w.-])(sk\.eyJ[A-Za-z0-9_-]{40,}\.[A-Za-z0-9_-]{20,})(?![\w-])]],
	keywords = { "sk.eyJ" },
	window = 1024,
	group = 1,
	severity = "high",
	confidence = "high",
	mask = { keep_first = 6, keep_last = 0 },
	examples = {
		match = { "MAPBOX_SECRET=sk.eyJ1IjoiYWNtZSIsImEiOiJ" .. fake(711, 20) .. "." .. fake(712, 22, URLSAFE), "sk.eyJ" .. fake(713, 60, URLSAFE) .. "." .. fake(714, 22, URLSAFE) },
		nomatch = { "pk.eyJ1IjoiYWNtZSIsImEiOiJ" .. fake(715, 20) .. "." .. fake(716, 22, URLSAFE), "sk.eyJ" .. fake(717, 10) },
	},
}

return M
