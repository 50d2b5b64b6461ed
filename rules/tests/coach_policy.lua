-- An example of coaching: payment cards going to a site that is not the
-- payment processor stop the user with a page that asks why (dlp.coach);
-- a justified override lets the same app send there under this rule for
-- an hour. Private keys are never coached: they are blocked.
--   ./build/dlpgate test rules/tests/coach_policy.lua rules/tests/coach_test.lua
local dlp = require "dlp"
local pii = require "pii"
local secrets = require "secrets"

local PAYMENTS = { "*.stripe.com", "api.adyen.com" }

function on_request(req, flow)
	local found = req:scan({ credit_card = pii.credit_card, private_key = secrets.private_key })
	if found.private_key then
		return dlp.block("private key upload", found)
	end
	if found.credit_card and not dlp.host_matches(flow.host, PAYMENTS) then
		return dlp.coach("payment card sent to a site that is not our payment processor", found,
			{ ttl = 3600, within = 600 })
	end
	return dlp.pass()
end
