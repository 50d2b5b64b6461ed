-- Tests for rules/pii.lua through rules/tests/pack_policy.lua (blocks on
-- any finding of any pack):
--   ./build/dlpgate test rules/tests/pack_policy.lua rules/tests/pii_test.lua
-- Every detector has cases that must be found and near misses that must
-- leave the body clean (no finding from any pack), in plain, JSON (with
-- \u escapes), form-encoded (%XX, +), gzip, multipart and large bodies.

local C = require "tests.cases"
local JSON, FORM = C.JSON, C.FORM
local found, clean = C.found, C.clean

-- ~110 KB of text that holds nothing
local FILLER = string.rep("Lorem ipsum dolor sit amet, consectetur adipiscing elit 2024-01-15. ", 1650)

return {
	-- credit_card
	found("visa with spaces", { "credit_card" }, "pay 4526 0181 5908 3012 now"),
	found("mastercard 2-series with dashes", { "credit_card" }, "card: 2720-6579-7543-2313"),
	found("amex 4-6-5", { "credit_card" }, "amex 3762 527601 89558 exp 04/28"),
	found("discover in JSON", { "credit_card" }, "{\"pan\":\"6011974650752918\",\"exp\":\"12/27\"}", { headers = JSON }),
	found("visa as JSON \\u escapes", { "credit_card" },
		"{\"card\":\"\\u0034\\u0035\\u0032\\u0036 0181 5908 3012\"}", { headers = JSON }),
	found("visa in a form body (+ and %2D)", { "credit_card" }, "name=Jane+Doe&card=4526%2D0181%2D5908%2D3012&cvv=123",
		{ headers = FORM }),
	found("mastercard spaced as + in a form body", { "credit_card" }, "cc=5399+3518+1909+3787&exp=1227", { headers = FORM }),
	found("jcb in a gzip body", { "credit_card" }, "order=77&card=3530842684656323", { encoding = "gzip" }),
	found("unionpay 19 digits after 100 KB", { "credit_card" }, FILLER .. "\ncard 6213721590109281593\n"),
	found("diners 4-6-4 in CSV", { "credit_card" }, "name,card\nbob,3051 223307 9241\n"),
	clean("Luhn-invalid visa", "pay 4526 0181 5908 3013 now"),
	clean("order number starting with 1", "order 1234 5678 9012 3456 shipped"),
	clean("microsecond timestamp and float digits",
		"{\"ts\": 1700000000123456, \"score\": 0.4526018159083012}", { headers = JSON }),
	clean("mixed separators", "4526-0181 5908 3012"),
	clean("digits inside a hex id", "id=a4526018159083012b"),
	clean("20-digit number", "ref 45260181590830125555"),

	-- us_ssn
	found("dashed SSN", { "us_ssn" }, "employee 536-22-8417 onboarded"),
	found("9 digits after ssn in JSON", { "us_ssn_labeled" }, "{\"ssn\":\"536228417\"}", { headers = JSON }),
	found("spaced SSN after 'social security number' in a form", { "us_ssn_labeled" },
		"social+security+number=219+45+0031", { headers = FORM }),
	found("SSN in a gzip body", { "us_ssn" }, "SSN: 601-34-1290", { encoding = "gzip" }),
	clean("famous Woolworth SSN", "sample card 078-05-1120"),
	clean("area 666 and 9xx", "ssn 666-12-3456 itin 900-12-3456"),
	clean("9 digits without an SSN word", "order 536228417 shipped"),
	clean("phone-shaped 3-3-4", "room 415-555-2671"),

	-- iban
	found("IBAN in groups of 4", { "iban" }, "IBAN DE89 3704 0044 0532 0130 00, thanks"),
	found("IBAN in JSON", { "iban" }, "{\"iban\":\"GB29NWBK60161331926819\"}", { headers = JSON }),
	found("IBAN in a form body", { "iban" }, "iban=FR14%202004%201010%200505%200001%203M02%20606", { headers = FORM }),
	clean("IBAN with a wrong check digit", "IBAN DE89 3704 0044 0532 0130 01"),
	clean("IBAN of the wrong length", "GB29NWBK6016133192681"),
	clean("unknown country", "XX89370400440532013000"),

	-- email
	found("email address", { "email" }, "contact jane.doe@acme-corp.com for access"),
	found("email %40 in a form body", { "email" }, "user=maria.garcia%40gmail.com&pw=x", { headers = FORM }),
	found("email with \\u0040 in JSON", { "email" }, "{\"to\":\"bob.jones\\u0040contoso.com\"}", { headers = JSON }),
	clean("retina image and package versions", "<img src=\"logo@2x.png\"> npm i lodash@4.17.21 react@18.2.0"),
	clean("example.com address and git remote", "user@example.com git@github.com:acme/app.git"),

	-- phone
	found("NANP with a phone word", { "phone" }, "Phone: (415) 555-2671"),
	found("E.164 in JSON", { "phone" }, "{\"mobile\":\"+14155552671\"}", { headers = JSON }),
	found("international with separators", { "phone" }, "call me at +44 20 7946 0958 tomorrow"),
	clean("phone-shaped id with no phone word", "order 415-555-2671 shipped"),
	clean("timestamp next to a phone word", "{\"phone_last_seen\": 1700000000}", { headers = JSON }),
	clean("invalid area code", "phone serial 123-456-7890"),

	-- several at once: the reason names them, sorted
	{
		name = "card, SSN and email together",
		request = { body = "jane@acme-corp.com 4526 0181 5908 3012 SSN 536-22-8417" },
		expect = { verdict = "block", detectors = { "credit_card", "email", "us_ssn" },
			reason = "found credit_card,email,us_ssn" },
	},
	clean("large clean body", FILLER),
}
