-- Cases for coach_policy.lua: `verdict = "coach"` is what a coach page is.
--   ./build/dlpgate test rules/tests/coach_policy.lua rules/tests/coach_test.lua
local CARD = "4526 0181 5908 3012"
local C = require "tests.cases"
local KEY = C.pem("RSA PRIVATE KEY", 700, 6)

return {
	{ name = "a card to a chat site is coached", request = { url = "https://chat.example/send", body = "pay " .. CARD },
		expect = { verdict = "coach", detectors = { "credit_card" }, reason = "not our payment processor" } },
	{ name = "a card to the payment processor passes", request = { url = "https://api.stripe.com/v1/charges",
		body = "card=" .. CARD }, expect = { verdict = "pass" } },
	{ name = "a private key is blocked, not coached", request = { url = "https://chat.example/send",
		body = KEY .. " " .. CARD }, expect = { verdict = "block", detectors = { "private_key" } } },
	{ name = "nothing found passes", request = { url = "https://chat.example/send", body = "hello" },
		expect = { verdict = "pass", no_findings = true } },
}
