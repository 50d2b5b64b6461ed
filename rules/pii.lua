-- rules/pii.lua: personal data detectors (payment cards, US SSN, IBAN,
-- email addresses, phone numbers).
--
--   local pii = require "pii"          -- from a policy in rules/ or rules/*/
--   local found = req:scan(pii)
--
-- Cards and dashed SSNs have no literal to key on; they declare the digits
-- every match holds (digits = 14, 9), so their regexes run only around
-- runs of that many digits; so do IBANs (digits = 8: the national part of
-- every format holds a run of 10 or more); email (the @) and phone (its phone
-- words) run only near their keyword. The
-- regexes are written to stay linear (no nested quantifiers over the same characters)
-- and every finding is confirmed by a checksum, a context word or a
-- format specific enough to stand alone.
--
-- Choices an administrator may want to know about:
--   * credit_card: the brand prefix, the grouping and Luhn must all hold.
--     Separators must be the same all through (4111-1111 1111-1111 is not
--     read as a card); digits glued to a word, a decimal point or a longer
--     number are not. Published test numbers (4111 1111 1111 1111...) pass
--     Luhn and are reported like any other number.
--   * us_ssn: ddd-dd-dddd on its own, or 9 digits (optionally spaced)
--     right after an SSN word. The us_ssn validator drops impossible and
--     famous advertising numbers.
--   * phone: needs a phone word (phone, mobile, tel:, fax, ...) within 50
--     bytes, so random digit runs and ids are never reported on their own.
local dlp = require "dlp"

local M = {}

-- Brand prefixes of the 16-digit cards: Visa 4, Mastercard 51-55 and
-- 2221-2720, Discover 6011/644-649/65, UnionPay 62, JCB 3528-3589.
local PREFIX16 = [[(?:4\d{3}|5[1-5]\d{2}|2(?:22[1-9]|2[3-9]\d|[3-6]\d{2}|7[01]\d|720)|6(?:011|4[4-9]\d|5\d{2}|2\d{2})|35(?:2[89]|[3-8]\d))]]

M.credit_card = dlp.detector{
	name = "credit_card",
	description = "Payment card numbers (Visa, Mastercard incl. 2221-2720, Amex, Discover, JCB, Diners, UnionPay), "
		.. "4-4-4-4 / 4-6-5 / 4-6-4 groups with one kind of separator or none, Luhn-checked",
	regex = [[(?<![\w.+\-/])(?:]]
		-- 16 digits, 4-4-4-4 with the same separator (space, dash or none)
		.. PREFIX16 .. [[([ -]?)\d{4}\1\d{4}\1\d{4}]]
		-- 17-19 digits, unseparated (Visa, UnionPay, Discover, JCB long PANs)
		.. [[|(?:4\d{3}|6(?:011|4[4-9]\d|5\d{2}|2\d{2})|35(?:2[89]|[3-8]\d))\d{13,15}]]
		-- Amex 15 digits, 4-6-5
		.. [[|3[47]\d{2}([ -]?)\d{6}\2\d{5}]]
		-- Diners Club 14 digits, 4-6-4
		.. [[|3(?:0[0-5]|[689]\d)\d([ -]?)\d{6}\3\d{4}]]
		.. [[)(?![\w\-/]|\.\d)]],
	-- the shortest (Diners) holds 14: the regex runs only where 14 digits
	-- stand together, a match starting at the first of them
	digits = 14,
	window = 0,
	validate = "luhn",
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 4 },
	examples = {
		match = {
			"Visa: 4526 0181 5908 3012 exp 12/27",
			"mc=5399-3518-1909-3787",
			"Mastercard 2-series 2720 6579 7543 2313",
			"amex 3762 527601 89558",
			"{\"pan\":\"6011974650752918\"}",
			"jcb 3530842684656323, diners 3051 223307 9241",
			"unionpay 6213721590109281593",
			"alice,4661318609139090,12/27",
			"card 4526 0181 5908 3012 123 (cvv after the number)",
		},
		nomatch = {
			"Visa: 4526 0181 5908 3013",                   -- Luhn fails
			"order 1234 5678 9012 3456",                   -- no brand starts with 1
			"ts=1700000000000000",                         -- a timestamp, not a brand
			"4526-0181 5908 3012",                         -- mixed separators
			"p=0.4526018159083012",                        -- decimal digits of a float
			"id a4526018159083012b",                       -- inside a word
			"45260181590830125555",                        -- 20 digits: a longer number
			"version 4.5.2.6 build 0181",
			"2000 0000 0000 0008",                         -- 2000 is not a Mastercard range
		},
	},
}

-- Two detectors for one kind of number, so each can be found cheaply: the
-- dashed form needs no word around it and is matched everywhere; the
-- bare 9 digits count only right after an SSN word, which is the keyword
-- that lets the regex run only there.
M.us_ssn = dlp.detector{
	name = "us_ssn",
	description = "US Social Security numbers written ddd-dd-dddd; impossible (000/666/9xx area, 00 group, "
		.. "0000 serial) and advertised numbers dropped",
	regex = [[(?<![\w\-/.])(\d{3}-\d{2}-\d{4})(?![\w\-/]|\.\d)]],
	digits = 9,
	window = 0,
	group = 1,
	validate = "us_ssn",
	severity = "high",
	confidence = "medium",
	mask = { keep_first = 0, keep_last = 4 },
	examples = {
		match = {
			"employee SSN 536-22-8417",
			"applicant 601-34-1290 signed",
		},
		nomatch = {
			"078-05-1120",                  -- the Woolworth wallet card number
			"ssn 123-45-6789",              -- advertising example
			"ssn: 666-12-3456",             -- area 666 is never issued
			"SSN 900-12-3456",              -- 9xx areas are ITINs, not SSNs
			"ssn 536-00-8417",              -- group 00
			"call 415-555-2671",            -- 3-3-4 is a phone number
			"part 536-22-84171",            -- longer number
		},
	},
}

M.us_ssn_labeled = dlp.detector{
	name = "us_ssn_labeled",
	description = "US Social Security numbers as 9 digits (optionally spaced or dashed) right after an SSN word "
		.. "(SSN, social security, soc sec, ss no/num/#); the same validity rules as us_ssn",
	regex = [[(?i:(?<![a-z])(?:ssn|social[\s_-]?security|soc\.?[\s_-]?sec\.?|ss[\s_-]?(?:no\b|num|\#)]]
		-- a taxpayer identification label (JSON keys: "taxpayer_id", "taxpayerId", "tax_id")
		.. [[|taxpayer[\s_-]?(?:id(?:entification)?)?|tax[\s_-]?id)]]
		.. [[(?:[\s_-]?(?:number|num|nbr|no\b\.?|\#))?s?)["']?[\s:=\#-]{0,6}["']?]]
		.. [[(\d{3}[ -]?\d{2}[ -]?\d{4})(?![\w\-]|\.\d)]],
	keywords = { "ssn", "social", "soc", "ssno", "ss no", "ss_no", "ss-no", "ssnum", "ss num", "ss_num", "ss-num",
		"ss#", "ss #", "taxpayer", "tax id", "tax_id", "tax-id", "taxid" },
	window = 16,
	group = 1,
	validate = "us_ssn",
	severity = "high",
	confidence = "medium",
	mask = { keep_first = 0, keep_last = 4 },
	examples = {
		match = {
			"ssn=536228417",
			"Social Security Number: 219 45 0031",
			"{\"user_ssn\": \"412567734\"}",
			"SSN 536-22-8417",
			"{\"taxpayer_id\": \"536228417\"}",
			"{\"taxpayerId\":\"536-22-8417\"}",
		},
		nomatch = {
			"ssn 123456789",                -- advertising example
			"order 536228417 shipped",      -- 9 digits with no SSN word
			"class no 536228417",           -- 'ss no' inside a word
			"ssn: 666123456",               -- area 666 is never issued
		},
	},
}

-- An IBAN in one case (people type "de89 3704 ..." too): country, check
-- digits, the bank code, then groups of 4 and a last short one, split by a
-- space or a dash or not at all. A group after a separator holds a digit,
-- so a word after the number ("... 7034 from", "... 6607 HTTP/1.1") is not
-- taken for one of its groups (an IBAN whose later groups are all letters,
-- written spaced, is the price).
local function iban_body(az)
	local al = az .. "0-9"
	return ("[%s]{2}\\d{2}[ -]?[%s]{4}(?:[ -](?=[%s]{0,3}\\d)[%s]{4}|[%s]{4}){1,6}"
		.. "(?:[ -](?=[%s]{0,2}\\d)[%s]{1,3}|[%s]{1,3})?"):format(az, al, az, al, al, az, al, al)
end

M.iban = dlp.detector{
	name = "iban",
	description = "International Bank Account Numbers, plain or in groups of 4, checked against the "
		.. "country's length and the mod-97 check digits",
	regex = [[(?<![A-Za-z0-9])(]] .. iban_body("A-Z") .. "|" .. iban_body("a-z") .. [[)(?![A-Za-z0-9])]],
	-- the national part of every IBAN format holds a run of 10 or more digits
	-- (single spaces or dashes between; GB29 NWBK 6016 1331 9268 19: 14): the
	-- regex runs only around runs of 8, not over every byte of every body. A
	-- match starts at most 12 bytes before such a run (RO49 AAAA 1B31 0075 ...)
	digits = 8,
	window = { before = 16, after = 0 },
	group = 1,
	validate = "iban",
	severity = "high",
	confidence = "high",
	mask = { keep_first = 4, keep_last = 4 },
	examples = {
		match = {
			"IBAN DE89 3704 0044 0532 0130 00",
			"pay to GB29NWBK60161331926819 today",
			"iban: FR14 2004 1010 0505 0001 3M02 606",
			"{\"iban\":\"NL91ABNA0417164300\"}",
			"ES9121000418450200051332",
			"iban: de89 3704 0044 0532 0130 00",    -- lower case
			"iban gb29 nwbk 6016 1331 9268 19 ok",  -- lower case, a word after it
			"IBAN: ES91 2100 0418 4502 0005 1332 ok",
			"IBAN DE89-3704-0044-0532-0130-00",     -- dashes
		},
		nomatch = {
			"IBAN DE89 3704 0044 0532 0130 01",     -- check digits do not match
			"GB29NWBK6016133192681",                -- one character short for GB
			"XX89370400440532013000",               -- no such country
			"ref DE8937040044053201300099",         -- too long for DE
			"SKU AB12CDEF34567890",
			"iban: de89 3704 0044 0532 0130 01",    -- lower case, check digits do not match
		},
	},
}

M.email = dlp.detector{
	name = "email",
	description = "Email addresses (not image@2x file names, package@version, URL user:pass@host, "
		.. "example/test domains, git@/noreply addresses or GCP service accounts)",
	regex = [[(?i)(?:(?<=mailto:)|(?<![\w.%+\-/:]))[a-z0-9_][a-z0-9._%+-]{0,63}]]
		.. [[@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+]]
		.. [[(?!(?:png|jpe?g|gif|svg|webp|bmp|ico|js|mjs|css|map|json|txt|pdf|zip|html?|php|lock)(?![a-z]))]]
		.. [[[a-z]{2,24}(?![\w-]|\.[a-z0-9])]],
	-- every address has an @, at most 64 characters after the match starts
	keywords = { "@" },
	window = 72,
	allow = {
		regexes = {
			[[(?i)@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|example|test|invalid|localhost|local)$]],
			[[(?i)^(?:git|noreply|no-reply|donotreply)@]],
			[[(?i)@users\.noreply\.github\.com$]],
			[[(?i)@[\w.-]+\.iam\.gserviceaccount\.com$]],   -- service accounts are not people
		},
		target = "match",
	},
	severity = "low",
	confidence = "high",
	mask = { keep_first = 1, keep_last = 3 },
	examples = {
		match = {
			"contact: jane.doe@acme-corp.com",
			"{\"email\":\"j.smith+news@mail.example.co.uk.acme.io\"}",
			"mailto:Bob_Jones@Contoso.COM",
			"email=maria.garcia@gmail.com",
		},
		nomatch = {
			"<img src=\"logo@2x.png\">",                -- retina image name
			"npm install lodash@4.17.21",               -- package@version
			"https://deploy:hunter2@git.acme.com/repo", -- URL credentials, not an address
			"user@example.com",                         -- reserved example domain
			"git@github.com:acme/app.git",              -- ssh remote
			"ci@acme-prod.iam.gserviceaccount.com",     -- a service account, not a person
			"not an email: @acme.com or bob@",
		},
	},
}

-- matched as words (boundary below), so "tel" is not in hotel or intel,
-- "cell" not in cellar, "sms" not in ssMSSQL; "phone_number" and
-- "mobilePhone" still count
local PHONE_WORDS = { "phone", "telephone", "tel", "mobile", "cell", "cellular", "fax", "whatsapp", "sms",
	"call me", "call us", "msisdn", "contact" }

M.phone = dlp.detector{
	name = "phone",
	description = "Phone numbers (E.164 +CC..., NANP (415) 555-2671 / 415-555-2671 / 415.555.2671, "
		.. "bare 10-digit NANP) with a phone word (phone, mobile, tel:, fax, whatsapp, sms, contact...) within 50 bytes",
	regex = [[(?<![\w+\-./])(?|]]
		-- international: +CC then 8 to 15 digits in all, common separators
		.. [[(\+(?=(?:[ .()-]{0,2}\d){8,15}(?![ .()-]{0,2}\d))[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4})]]
		-- NANP, (415) 555-2671 or 415-555-2671 / 415.555.2671 / 415 555 2671 (one separator all
		-- through), optional leading 1
		.. [[|((?:1[ .-])?(?:\([2-9]\d{2}\) ?[2-9]\d{2}[ .-]\d{4}|[2-9]\d{2}([ .-])[2-9]\d{2}\2\d{4}))]]
		-- NANP, 10 digits together (only ever reported next to a phone word)
		.. [[|([2-9]\d{2}[2-9]\d{6}))(?![\w\-]|\.\d)]],
	group = 1,
	-- the phone words are the keywords too: a match starts within 50 bytes
	-- of one plus the longest number (under 50 characters)
	keywords = PHONE_WORDS,
	window = 100,
	context = {
		words = PHONE_WORDS,
		distance = 50,
	},
	boundary = true,
	severity = "low",
	confidence = "medium",
	mask = { keep_first = 2, keep_last = 2 },
	examples = {
		match = {
			"Phone: (415) 555-2671",
			"call me at +44 20 7946 0958",
			"{\"mobile\":\"+14155552671\"}",
			"tel: 415.555.2671",
			"whatsapp +49-30-1234567",
			"phone_number=4155552671",
		},
		nomatch = {
			"order 415-555-2671 shipped",             -- no phone word nearby
			"phone last_seen 1700000000",             -- a timestamp (NANP area never starts with 1)
			"phone serial 123-456-7890",              -- area code cannot start with 1
			"phone model 415-555-26711",              -- part of a longer number
			"phone pin +12 34",                       -- too few digits for E.164
			"phone build 10.415.555.2671",            -- dotted version
			"phone 607.873-5848",                     -- separators that change mid-number
			"hotel room 415-555-2671",                -- 'tel' inside hotel is no phone word
			"ssMSSQL port 415-555-2671",              -- nor 'sms' inside ssMSSQL
		},
	},
}

return M
