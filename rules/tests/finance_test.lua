-- Tests for rules/finance.lua through rules/tests/pack_policy.lua (blocks on
-- any finding of any pack):
--   ./build/dlpgate test rules/tests/pack_policy.lua rules/tests/finance_test.lua
-- Every detector has bodies where it must find something and near misses
-- that must leave the body clean (no finding from any pack), in plain,
-- JSON (with \u escapes), form-encoded, gzip, multipart and large bodies.

local C = require "tests.cases"
local JSON, FORM, MULTIPART = C.JSON, C.FORM, C.MULTIPART
local found, clean = C.found, C.clean

-- ~110 KB of text that holds nothing
local FILLER = string.rep("Quarterly settlement report, all figures in thousands, see appendix B. ", 1550)

return {
	-- aba_routing
	found("routing number with its word", { "aba_routing" }, "Please wire to routing number: 021000021 today"),
	found("routing number in JSON", { "aba_routing" }, "{\"routing_number\":\"026009593\",\"name\":\"ACME\"}", { headers = JSON }),
	found("ABA in a form body", { "aba_routing" }, "bank=Chase&aba=021000021", { headers = FORM }),
	found("RTN as \\u escapes", { "aba_routing" }, "{\"rtn\":\"\\u0030\\u0031\\u0031000015\"}", { headers = JSON }),
	clean("routing number with a bad checksum", "routing number: 021000022"),
	clean("valid ABA with no routing word", "order 021000021 shipped"),
	clean("'aba' inside database", "database 021000021"),
	clean("prefix no Federal Reserve district uses", "routing 991000021"),

	-- swift_bic
	found("SWIFT code", { "swift_bic" }, "SWIFT: DEUTDEFF"),
	found("BIC with branch next to an IBAN in JSON", { "swift_bic", "iban" },
		"{\"iban\":\"DE89370400440532013000\",\"bic\":\"COBADEFFXXX\"}", { headers = JSON }),
	found("swift/bic in a form body", { "swift_bic" }, "beneficiary=ACME&swift%2Fbic=BOFAUS3NXXX", { headers = FORM }),
	clean("upper-case words near swift", "swift TRANSFER complete, reference PAYMENTS"),
	clean("BIC-shaped code with no SWIFT/BIC word", "code DEUTDEFF"),
	clean("9 characters is no BIC", "BIC DEUTDEFF1"),

	-- us_bank_account
	found("account number", { "us_bank_account" }, "Account number: 4402918833"),
	found("acct# in a form body", { "us_bank_account" }, "acct%23=000123456789&type=checking", { headers = FORM }),
	found("bank_account_number in JSON", { "us_bank_account" }, "{\"bank_account_number\": \"12345678901234\"}", { headers = JSON }),
	clean("AWS account number", "AWS account number 123456789012"),
	clean("'account' alone", "my account 4402918833 is active"),
	clean("too short", "account number: 1234567"),

	-- iban (the pii pack's, re-exported)
	found("IBAN in a gzip body", { "iban" }, "pay to GB29NWBK60161331926819", { encoding = "gzip" }),
	clean("IBAN with a wrong check digit", "IBAN GB29NWBK60161331926810"),

	-- cusip
	found("CUSIP", { "cusip" }, "CUSIP: 037833100"),
	found("CINS in JSON", { "cusip" }, "{\"cusip\": \"G1151C101\"}", { headers = JSON }),
	clean("8 characters", "CUSIP: 03783310"),
	clean("9 digits with no CUSIP word", "order 037833100"),

	-- isin
	found("ISIN", { "isin" }, "ISIN: US0378331005"),
	found("ISIN list in JSON", { "isin" }, "{\"isin\":[\"XS2314659447\",\"DE0007164600\"]}", { headers = JSON }),
	clean("unknown country", "isin ZZ0378331005"),
	clean("ISIN-shaped with no ISIN word", "ticker US0378331005"),

	-- card_track1
	found("track 1", { "card_track1" }, "%B4526018159083012^DOE/JANE^27121010000000000000000?"),
	found("track 1 in JSON", { "card_track1" }, "{\"track1\":\"%B376252760189558^LEE/ANN^2803101000000?\"}", { headers = JSON }),
	found("track 1 in a multipart upload", { "card_track1" },
		"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"swipes.txt\"\r\n\r\n"
			.. "%B5399351819093787^SMITH/JOHN Q^2601201123456789?\n\r\n--XYZ--\r\n", { headers = MULTIPART }),
	clean("track 1 with a Luhn-invalid PAN", "%B4526018159083013^DOE/JANE^27121010000000000000000?"),
	clean("carets in code", "x = a^b^c; y = 2^10^2"),

	-- card_track2
	found("track 2 with sentinels", { "card_track2" }, ";4526018159083012=27121010000000000000?"),
	found("track 2 in a gzip body", { "card_track2" }, "swipe: 5399351819093787=2601201123456789", { encoding = "gzip" }),
	found("track 2 after 100 KB", { "card_track2" }, FILLER .. "\n;6011974650752918=28041011000000?\n"),
	clean("track 2 with a Luhn-invalid PAN", ";4526018159083013=27121010000000000000?"),
	clean("digits=digits that is no swipe", "ratio 1234567890123=27121010"),

	clean("large clean body", FILLER),
}
