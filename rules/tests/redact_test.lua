-- What the packs' detectors mask when a policy redacts (see
-- redact_policy.lua): only the secret (the capture group), with the
-- mask's keep_first/keep_last letters and digits left visible. Escaped
-- characters are rewritten in the same width (%2A, \u002a), so bodies
-- keep their length.
--   ./build/dlpgate test rules/tests/redact_policy.lua rules/tests/redact_test.lua

local C = require "tests.cases"
local fake, redacts = C.fake, C.redacts
local JSON = { headers = C.JSON }
local FORM = { headers = C.FORM }
local PW = fake(3001, 20)
local T = fake(3002, 35)

return {
	redacts("card keeps its first and last 4", "pay 4526 0181 5908 3012 now", "pay 4526 **** **** 3012 now"),
	redacts("SSN keeps its last 4", "ssn 536-22-8417", "ssn ***-**-8417"),
	redacts("SSN after its word: only the number", "SSN: 536228417.", "SSN: *****8417."),
	redacts("IBAN keeps country, check digits and last 4", "IBAN DE89 3704 0044 0532 0130 00",
		"IBAN DE89 **** **** **** **30 00"),
	redacts("AWS key id keeps prefix and last 4", "id=AKIAIOSFODNN7EXAMPLE", "id=AKIA************MPLE"),
	redacts("database URL: only the password", "DATABASE_URL=postgres://app:" .. PW .. "@db.acme.io/prod",
		"DATABASE_URL=postgres://app:" .. string.rep("*", 20) .. "@db.acme.io/prod"),
	redacts("URL credentials: only the password", "https://deploy:" .. PW .. "@git.acme.io/app.git",
		"https://deploy:" .. string.rep("*", 20) .. "@git.acme.io/app.git"),
	redacts("env password: only the value", "DB_PASSWORD=" .. PW, "DB_PASSWORD=" .. string.rep("*", 20)),
	redacts("form password: an escaped letter masked as %2A, symbols kept", "user=jane&password=" .. "s3cr3t%50%40ssw0rd%212024",
		"user=jane&password=" .. "******%2A%40******%21****", FORM),
	redacts("JSON \\u escape masked as \\u002a, same length", "{\"k\":\"ghp_" .. T:sub(1, 10) .. "\\u0041" .. T:sub(11, 35) .. "\"}",
		"{\"k\":\"ghp_" .. T:sub(1, 4) .. string.rep("*", 6) .. "\\u002a" .. string.rep("*", 25) .. "\"}", JSON),
	-- decoded views: masked where the bytes came from, in their encoding
	redacts("card '+'-separated in a form sent as text/plain", "card=4814+3088+7165+1613&ok=1",
		"card=4814+****+****+1613&ok=1"),
	redacts("card %20-separated in a URL-encoded field inside JSON", "{\"q\":\"pay=4814%203088%207165%201613\"}",
		"{\"q\":\"pay=4814%20****%20****%201613\"}", JSON),
	redacts("email written with %40 in a query-like text", "see https://x.io/u?mail=jane.doe%40corp-mail.com now",
		"see https://x.io/u?mail=j***.***%40****-****.com now"),
	redacts("lower-case IBAN", "iban: de89 3704 0044 0532 0130 00", "iban: de89 **** **** **** **30 00"),
	redacts("card wrapped over two lines", "card 4814 3088\n7165 1613 thanks", "card 4814 ****\n**** 1613 thanks"),
	{ name = "card inside base64 cannot be masked in place: blocked, saying why",
	  request = C.request("{\"data\":\"eyJjYXJkIjoiNDgxNCAzMDg4IDcxNjUgMTYxMyJ9\"}", JSON),
	  expect = { verdict = "block", reason = "cannot redact: credit_card was found in the decoded base64 view" } },
}
