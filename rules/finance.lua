-- rules/finance.lua: banking and securities data - ABA routing numbers,
-- SWIFT/BIC codes, US bank account numbers, IBAN (the pii pack's),
-- CUSIP and ISIN security ids, and magnetic-stripe track data.
--
--   local finance = require "finance"  -- from a policy in rules/ or rules/*/
--   local found = req:scan(finance)
--
-- Routing numbers, account numbers, BICs and security ids are short digit
-- or letter runs that occur everywhere, so each one is only reported with
-- its own word nearby (routing/ABA, SWIFT/BIC, account number, CUSIP,
-- ISIN); routing numbers must also pass the ABA checksum and BICs must
-- carry a real country code. The engine has no CUSIP/ISIN check-digit
-- validator, so those two rely on their word and their shape alone (low
-- severity: they identify securities, not people).
local dlp = require "dlp"

-- The iban detector lives in pii.lua; a policy in rules/ or rules/tests/
-- finds it as "pii", one at the repository root as "rules.pii".
local ok, pii = pcall(require, "pii")
if not ok then
	if not tostring(pii):find("not found", 1, true) then
		error(pii, 0) -- pii.lua itself is broken: say so
	end
	pii = require "rules.pii"
end

local M = {}

-- ISO 3166-1 alpha-2 codes, plus XK (Kosovo, used in BICs).
local COUNTRIES = [[AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS
IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO
MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT
TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW]]

local function alternation(words)
	local t = {}
	for w in words:gmatch("%u%u") do
		t[#t + 1] = w
	end
	return "(?:" .. table.concat(t, "|") .. ")"
end

local COUNTRY = alternation(COUNTRIES)
-- ISINs also use XS (international securities) and EU (EU bonds).
local ISIN_PREFIX = alternation(COUNTRIES .. " XS EU")

M.aba_routing = dlp.detector{
	name = "aba_routing",
	description = "US ABA routing transit numbers: 9 digits passing the 3-7-1 checksum with a valid Federal "
		.. "Reserve prefix, with routing/ABA/RTN/transit within 60 bytes",
	regex = [[(?<![\w.\-])([0-9]{9})(?![\w\-]|\.[0-9])]],
	keywords = { "routing", "aba", "rtn", "transit" },
	-- as words: 'aba' inside "database" is no context, "routing_number" is
	context = { words = { "routing", "aba", "rtn", "abartn", "transit number", "transit no", "transit #" },
		distance = 60 },
	boundary = true,
	group = 1,
	validate = "aba",
	severity = "medium",
	confidence = "high",
	mask = { keep_first = 0, keep_last = 4 },
	examples = {
		match = {
			"routing number: 021000021",
			"ABA 011000015, account 4402918833",
			"RTN=026009593",
			"{\"routing_number\":\"121000358\"}",
		},
		nomatch = {
			"routing number: 021000022",          -- checksum fails
			"order 021000021 shipped",            -- no routing word
			"routing 991000021",                  -- 99 is no Federal Reserve prefix
			"routing 0210000210",                 -- 10 digits
			"database 021000021",                 -- 'aba' inside a word is no context
		},
	},
}

M.swift_bic = dlp.detector{
	name = "swift_bic",
	description = "SWIFT/BIC codes (4 bank letters, a real country code, 2 location, optional 3 branch) with "
		.. "SWIFT/BIC/IBAN within 80 bytes",
	-- not part of an identifier: VKI_TIOCMSET is a constant, not a BIC
	regex = [[(?<![A-Za-z0-9_])([A-Z]{4}]] .. COUNTRY .. [[[A-Z0-9]{2}(?:[A-Z0-9]{3})?)(?![A-Za-z0-9_])]],
	keywords = { "swift", "bic", "iban" },
	-- as words: "bic" in ARABIC, CUBIC or TIOCMBIC is no context
	context = { words = { "swift", "bic", "bank identifier", "iban" }, distance = 80 },
	boundary = true,
	group = 1,
	severity = "low",
	confidence = "medium",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = {
			"SWIFT: DEUTDEFF",
			"BIC code NWBKGB2L",
			"swift/bic: BOFAUS3NXXX",
			"{\"iban\":\"DE89370400440532013000\",\"bic\":\"COBADEFFXXX\"}",
		},
		nomatch = {
			"swift TRANSFER",                     -- 'SF' is no country
			"BIC DEUTDEFF1",                      -- 9 characters
			"DEUTDEFF",                           -- no SWIFT/BIC word
			"swift: deutdeff",                    -- BICs are upper case
			"public PAYMENTS",
			"ARABIC LETTER ALEF ISOLATED FORM",   -- 'bic' inside a word is no context
			"#define TIOCMBIC TIOCMSET",
			"#define VKI_TIOCMBIC 0x741c /* bic modem bits */ #define VKI_TIOCMSET 0x741a",
		},
	},
}

M.us_bank_account = dlp.detector{
	name = "us_bank_account",
	description = "US bank account numbers: 8-17 digits right after 'account number', 'acct', 'bank/checking/savings "
		.. "account' (not an AWS/cloud account id)",
	regex = [[(?i)(?<![a-z])(?<!aws )(?<!aws_)(?<!aws-)(?:(?:bank|checking|savings|deposit|dda)[\s_-]?(?:account|acct)(?:[\s_-]?(?:number|num|no\.?|nbr|\#))?]]
		.. [[|account[\s_-]?(?:number|num|no\.?|nbr|\#)|acct(?:[\s_-]?(?:number|num|no\.?|nbr|\#))?)s?["']?\s{0,3}[:=\#]?\s{0,3}["']?]]
		.. [[([0-9]{8,17})(?![\w-]|\.[0-9])]],
	keywords = { "account", "acct" },
	-- the label starts at the keyword or at most "checking " before it
	window = { before = 9, after = 0 },
	group = 1,
	entropy = 2.0,
	severity = "medium",
	confidence = "low",
	mask = { keep_first = 0, keep_last = 4 },
	examples = {
		match = {
			"Account number: 4402918833",
			"acct# 000123456789",
			"{\"bank_account_number\": \"12345678901234\"}",
			"checking account 987654321",
		},
		nomatch = {
			"account number: 1234567",               -- 7 digits
			"AWS account number 123456789012",       -- a cloud account id
			"account number 00000000",               -- one digit repeated
			"my account 4402918833",                 -- 'account' alone is not enough
			"acct 12345678901234567890",             -- 20 digits
		},
	},
}

M.iban = pii.iban

M.cusip = dlp.detector{
	name = "cusip",
	description = "CUSIP / CINS security identifiers (9 characters ending in a digit) within 200 bytes of the word CUSIP",
	regex = [[(?<![A-Za-z0-9])([0-9][0-9A-Z]{7}[0-9]|[A-Z][0-9]{3}[0-9A-Z]{4}[0-9])(?![A-Za-z0-9])]],
	keywords = { "cusip" },
	window = 200,
	group = 1,
	severity = "low",
	confidence = "medium",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = { "CUSIP: 037833100", "cusip=38259P508", "{\"cusip\": \"G1151C101\"}" },
		nomatch = { "CUSIP: 03783310", "cusip ABCDEFGHI", "order 037833100" },
	},
}

M.isin = dlp.detector{
	name = "isin",
	description = "ISIN security identifiers (country or XS/EU + 9 + check digit, 3+ digits) within 300 bytes of the word ISIN",
	-- at least 3 digits in the last 10 characters: real NSINs are mostly digits
	regex = [[(?<![A-Za-z0-9])(]] .. ISIN_PREFIX .. [[(?=(?:[A-Z]{0,9}[0-9]){3})[A-Z0-9]{9}[0-9])(?![A-Za-z0-9])]],
	keywords = { "isin" },
	window = 300,
	group = 1,
	severity = "low",
	confidence = "medium",
	mask = { keep_first = 4, keep_last = 0 },
	examples = {
		match = { "ISIN: US0378331005", "isin=DE0007164600", "{\"isin\":\"XS2314659447\"}" },
		nomatch = { "ISIN: US037833100", "isin ZZ0378331005", "ticker US0378331005", "ISIN: USTREASURYB1" },
	},
}

M.card_track1 = dlp.detector{
	name = "card_track1",
	description = "Magnetic-stripe track 1 data (%B PAN ^ NAME ^ YYMM service-code discretionary ?), Luhn-checked PAN",
	regex = [[(?:%B|(?<![A-Za-z0-9])B)([0-9]{13,19})\^[^^\r\n]{2,26}\^[0-9]{2}(?:0[1-9]|1[0-2])[0-9]{3}[^?^\r\n]{0,79}\??]],
	keywords = { "^" },
	group = 1,
	validate = "luhn",
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 4 },
	examples = {
		match = {
			"%B4526018159083012^DOE/JANE^27121010000000000000000?",
			"swipe=B5399351819093787^SMITH/JOHN Q^2601201123456789?",
			"{\"track1\":\"%B376252760189558^LEE/ANN^2803101000000?\"}",
		},
		nomatch = {
			"%B4526018159083013^DOE/JANE^27121010000000000000000?",   -- Luhn fails
			"%B4526018159083012^DOE/JANE^27131010000000?",             -- month 13
			"x = a^b^c",
		},
	},
}

M.card_track2 = dlp.detector{
	name = "card_track2",
	description = "Magnetic-stripe track 2 data (;PAN=YYMM service-code discretionary ?), sentinels optional, Luhn-checked PAN",
	regex = [[(?:;|(?<![\w;=]))([0-9]{13,19})=[0-9]{2}(?:0[1-9]|1[0-2])[0-9]{3}[0-9]{0,40}(?:\?|(?![0-9]))]],
	digits = 13, -- the PAN; a match starts at it or at the ';' before it
	window = 1,
	group = 1,
	validate = "luhn",
	severity = "critical",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 4 },
	examples = {
		match = {
			";4526018159083012=27121010000000000000?",
			"track2: 5399351819093787=2601201123456789",
			"{\"t2\":\";6011974650752918=28041011000000?\"}",
		},
		nomatch = {
			";4526018159083013=27121010000000000000?",    -- Luhn fails
			";4526018159083012=27001010000000?",          -- month 00
			"id=4526018159083012=27121010",               -- a query value, not a swipe
		},
	},
}

return M
