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

-- National identity and tax numbers. Each is checked by the validator its
-- issuer's rules make possible (dlp.validate.NAME in C: check digits, or
-- only structure where the number has none). Each is looked for only near
-- words that go with it (the keywords, as words: boundary = true, so "sin"
-- is not in "using" nor "cf" in "CFLAGS"), within 300 bytes either side:
-- nine or eleven digits with a one-in-ten checksum are everywhere, and a
-- scan of every digit run for them would cost more than the rest of the
-- packs together. The keywords are the number's own labels (strong: "CPF",
-- "Steuer-ID") and, for some, the words of the forms it is written in
-- (weak: "cliente", "titular", "payroll"). Confidence (see the README's
-- policy section) is graded on the strong ones: a number whose validator
-- passed is high with a strong word within 300 bytes and medium with only
-- a weak one; a number with no check digit (passport) is medium at best.

local NEAR = { before = 300, after = 300 }

-- A label of several words is also written as a JSON key or a form field:
-- "ni_number", "social-insurance", "codiceFiscale" (matched without case).
-- Each phrase of letters and spaces is kept and joined by "_", "-" and
-- nothing; phrases with other marks ("sin :", "cod. fisc") stay as they are.
local function spellings(words)
	local out = {}
	for _, w in ipairs(words) do
		out[#out + 1] = w
		if w:find(" ", 1, true) and not w:find("%p") then
			for _, join in ipairs({ "_", "-", "" }) do
				out[#out + 1] = (w:gsub(" ", join))
			end
		end
	end
	return out
end

M.uk_nino = dlp.detector{
	name = "uk_nino",
	description = "UK National Insurance numbers (AB123456C, AB 12 34 56 C): prefixes HMRC allocates, suffix A-D "
		.. "(no check digit), near NI words or payroll words",
	-- in one case throughout: typed into a form it is often lower case
	regex = [=[(?<![\w\-/.])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]]=]
		.. [[|[a-ceghj-pr-tw-z][a-ceghj-npr-tw-z] ?\d{2} ?\d{2} ?\d{2} ?[a-d])(?![\w\-/]|\.\d)]],
	keywords = spellings({ "national insurance", "nino", "ni number", "ni no", "nin", "insurance number", "nat ins",
		"hmrc", "payroll", "paye", "p60", "p45" }),
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "uk_nino",
	confidence = { words = spellings({ "national insurance", "nino", "ni number", "ni no", "nin", "insurance number",
		"nat ins" }) },
	severity = "high",
	mask = { keep_first = 2, keep_last = 1 },
	examples = {
		match = {
			"National Insurance number: AB123456C",
			"NINO JG 10 37 59 A",
			"{\"nino\":\"CE987654B\"}",
			"HMRC payroll record, employee AB123456C",
			"{\"national_insurance_number\": \"AB 12 34 56 C\"}",  -- a label as a JSON key
			"niNumber=jg103759a",           -- a form, lower case
		},
		nomatch = {
			"NI number QQ123456C",          -- Q is never a first letter
			"nino GB123456A",               -- GB is not allocated
			"ni AB123456E",                 -- suffix past D
			"nino AB1234567C",              -- seven digits
			"nino AB 12 34 56 CD",          -- glued to more letters
			"nino Ab123456c",               -- case mixed: a word, not a number
			"AB123456C",                    -- no NI or payroll word
		},
	},
}

M.ca_sin = dlp.detector{
	name = "ca_sin",
	description = "Canadian Social Insurance Numbers: 9 digits (3-3-3), Luhn-checked, never starting 0 or 8, "
		.. "near SIN / social insurance / assurance sociale",
	regex = [[(?<![\w\-/.])([1-79]\d{2}([ -]?)\d{3}\2\d{3})(?![\w\-/]|\.\d)]],
	-- "sin" alone is the sine of every maths library: only as a label
	-- (SIN:, SIN #, SIN no, "sin": in JSON, sin= in a form)
	keywords = spellings({ "sin:", "sin :", "sin #", "sin#", "sin no", "sin number", "\"sin\"", "'sin'", "sin=",
		"sin_", "social insurance", "assurance sociale", "n.a.s" }),
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "ca_sin",
	severity = "high",
	mask = { keep_first = 0, keep_last = 3 },
	examples = {
		match = {
			"SIN: 130 456 270",
			"Social Insurance Number 271-828-188",
			"{\"sin\":\"130456270\"}",
			"{\"sinNumber\": \"130-456-270\"}",
			"social_insurance_number=130 456 270",
		},
		nomatch = {
			"SIN: 130 456 271",             -- Luhn fails
			"SIN 830 456 279",              -- 8 is not used
			"order 130 456 270 shipped",    -- no SIN word
			"using 130456270",              -- 'sin' inside a word
			"SIN: 1304562701",              -- a longer number
			"y = math.sin(x) # id 130456270", -- the sine is no label
		},
	},
}

M.br_cpf = dlp.detector{
	name = "br_cpf",
	description = "Brazilian CPF written 000.000.000-00, both mod-11 check digits verified, near CPF or the "
		.. "words of a Brazilian form (cliente, nome, endereço...)",
	regex = [[(?<![\w\-/.])(\d{3}\.\d{3}\.\d{3}-\d{2})(?![\w\-/]|\.\d)]],
	keywords = spellings({ "cpf", "cadastro de pessoas", "contribuinte", "pessoa fisica", "pessoa física", "cliente",
		"nome", "endereço", "endereco", "titular" }),
	window = NEAR,
	group = 1,
	validate = "br_cpf",
	boundary = true,
	confidence = { words = spellings({ "cpf", "cadastro de pessoas", "contribuinte", "pessoa fisica", "pessoa física" }) },
	severity = "high",
	mask = { keep_first = 0, keep_last = 2 },
	examples = {
		match = {
			"CPF: 529.982.247-25",
			"cliente 111.444.777-35 cadastrado",
		},
		nomatch = {
			"CPF: 529.982.247-26",          -- second check digit wrong
			"cpf 111.111.111-11",           -- all one digit
			"cpf 529.982.247-250",          -- longer
			"cpf v529.982.247-25",          -- glued to a word
			"529.982.247-25",               -- no word of a Brazilian form
		},
	},
}

M.br_cpf_labeled = dlp.detector{
	name = "br_cpf_labeled",
	description = "Brazilian CPF as 11 bare digits (or 000000000-00) next to the word CPF, check digits verified",
	regex = [[(?<![\w\-/.])(\d{9}-?\d{2})(?![\w\-/]|\.\d)]],
	keywords = { "cpf" },
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "br_cpf",
	severity = "high",
	mask = { keep_first = 0, keep_last = 2 },
	examples = {
		match = { "cpf=52998224725", "{\"cpf\": \"111444777-35\"}" },
		nomatch = { "cpf=52998224726", "id 52998224725", "cpf 529982247250" },
	},
}

M.br_cnpj = dlp.detector{
	name = "br_cnpj",
	description = "Brazilian CNPJ (company registry) written 00.000.000/0000-00, both mod-11 check digits verified, "
		.. "near CNPJ or the words of a Brazilian form (empresa, razão social, fornecedor...)",
	regex = [[(?<![\w\-/.])(\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2})(?![\w\-/]|\.\d)]],
	keywords = spellings({ "cnpj", "cadastro nacional", "pessoa juridica", "pessoa jurídica", "empresa", "razão social",
		"razao social", "fornecedor" }),
	window = NEAR,
	group = 1,
	validate = "br_cnpj",
	boundary = true,
	confidence = { words = spellings({ "cnpj", "cadastro nacional", "pessoa juridica", "pessoa jurídica" }) },
	severity = "medium",
	mask = { keep_first = 2, keep_last = 2 },
	examples = {
		match = { "CNPJ 11.222.333/0001-81", "fornecedor 45.761.238/0001-78" },
		nomatch = { "CNPJ 11.222.333/0001-82", "cnpj 11.111.111/1111-11", "cnpj 11.222.333/0001-810",
			"11.222.333/0001-81" },
	},
}

M.br_cnpj_labeled = dlp.detector{
	name = "br_cnpj_labeled",
	description = "Brazilian CNPJ as 14 bare digits next to the word CNPJ, check digits verified",
	regex = [[(?<![\w\-/.])(\d{8}/?\d{4}-?\d{2})(?![\w\-/]|\.\d)]],
	keywords = { "cnpj" },
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "br_cnpj",
	severity = "medium",
	mask = { keep_first = 2, keep_last = 2 },
	examples = {
		match = { "cnpj: 11222333000181" },
		nomatch = { "cnpj: 11222333000182", "ts 11222333000181" },
	},
}

M.in_pan = dlp.detector{
	name = "in_pan",
	description = "Indian Permanent Account Numbers (AAAAA9999A, 4th letter a holder type), near PAN / "
		.. "permanent account number / income tax; no check digit",
	regex = [[(?<![A-Za-z0-9])([A-Z]{3}[PCHFATBLJG][A-Z]\d{4}[A-Z]|[a-z]{3}[pchfatbljg][a-z]\d{4}[a-z])(?![A-Za-z0-9])]],
	keywords = spellings({ "pan", "permanent account number", "income tax" }),
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "in_pan",
	severity = "high",
	mask = { keep_first = 0, keep_last = 2 },
	examples = {
		match = { "PAN: ABCPE1234F", "{\"pan_number\":\"AFZPK7190K\"}", "pan=abcpe1234f" },
		nomatch = {
			"PAN: ABCXE1234F",              -- X is no holder type
			"PAN ABCPE12345F",              -- five digits
			"ABCPE1234F",                   -- no PAN word
			"company ABCPE1234F",           -- 'pan' inside a word
			"PAN AbcPe1234F",               -- case mixed
		},
	},
}

M.in_aadhaar = dlp.detector{
	name = "in_aadhaar",
	description = "Indian Aadhaar numbers: 12 digits (4-4-4), not starting 0 or 1, Verhoeff check digit, "
		.. "near Aadhaar / UIDAI",
	regex = [[(?<![\w\-/.])([2-9]\d{3}([ -]?)\d{4}\2\d{4})(?![\w\-/]|\.\d)]],
	keywords = spellings({ "aadhaar", "aadhar", "uidai", "आधार" }),
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "in_aadhaar",
	severity = "high",
	mask = { keep_first = 0, keep_last = 4 },
	examples = {
		match = { "Aadhaar: 2341 2341 2346", "aadhaar_no=499185372604" },
		nomatch = {
			"Aadhaar: 2341 2341 2345",      -- Verhoeff fails
			"aadhaar 1341 2341 2346",       -- never starts with 1
			"invoice 2341 2341 2346",       -- no Aadhaar word
			"aadhaar 2341 2341 23461",      -- longer
		},
	},
}

M.de_steuer_id = dlp.detector{
	name = "de_steuer_id",
	description = "German tax identification numbers (Steuer-ID, IdNr): 11 digits, ISO 7064 MOD 11,10 and the "
		.. "digit-repetition rule, near Steuer-ID / Identifikationsnummer / IdNr / TIN",
	regex = [[(?<![\w\-/.])([1-9]\d(?: ?\d{3}){3})(?![\w\-/]|\.\d)]],
	keywords = spellings({ "steuer id", "steueridentifikationsnummer", "identifikationsnummer", "idnr", "tin" }),
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "de_steuer_id",
	severity = "high",
	mask = { keep_first = 0, keep_last = 3 },
	examples = {
		match = { "Steuer-ID: 86095742719", "IdNr 65 718 364 093", "steuer_id=86095742719" },
		nomatch = {
			"Steuer-ID: 86095742718",       -- check digit wrong
			"Steuer-ID 47158369024",        -- no digit repeats: not issued
			"Kundennummer 86095742719",     -- no tax word
			"tin 860957427190",             -- longer
		},
	},
}

M.fr_nir = dlp.detector{
	name = "fr_nir",
	description = "French social security numbers (NIR / INSEE): sex, year, month, department (2A/2B too), "
		.. "commune, order and the key 97 - N mod 97, near sécurité sociale / NIR / INSEE / carte vitale",
	regex = [[(?<![\w\-/.])([1-478] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2})(?![\w\-/]|\.\d)]],
	keywords = spellings({ "sécurité sociale", "securite sociale", "sécu", "secu", "nir", "insee", "carte vitale",
		"social security" }),
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "fr_nir",
	severity = "high",
	mask = { keep_first = 1, keep_last = 2 },
	examples = {
		match = {
			"N° de sécurité sociale : 1 84 06 76 451 089 47",
			"nir=291057512345620",
			"NIR 1 85 02 2A 012 345 31",
			"numero_securite_sociale=184067645108947",
		},
		nomatch = {
			"NIR 1 84 06 76 451 089 48",    -- key wrong
			"nir 1 84 15 76 451 089 47",    -- month 15
			"commande 184067645108947",     -- no NIR word
			"NIR 1840676451089470",         -- longer
		},
	},
}

M.es_dni = dlp.detector{
	name = "es_dni",
	description = "Spanish DNI (8 digits and a letter) and NIE (X/Y/Z, 7 digits, a letter), the letter checked "
		.. "(mod 23), near DNI/NIE/NIF or the words of a Spanish form (titular, apellidos...)",
	-- the letter glued, dashed or spaced ("12345678 Z"), in either case
	regex = [[(?<![\w\-/.])(\d{8}[ -]?[A-Za-z]|[XYZ][ -]?\d{7}[ -]?[A-Z]|[xyz][ -]?\d{7}[ -]?[a-z])]]
		.. [[(?![\w\-/]|\.\d)]],
	keywords = spellings({ "dni", "nie", "nif", "documento nacional", "identidad", "extranjero", "titular",
		"apellidos", "domicilio" }),
	window = NEAR,
	group = 1,
	validate = "es_dni",
	boundary = true,
	confidence = { words = spellings({ "dni", "nie", "nif", "documento nacional", "identidad", "extranjero" }) },
	severity = "high",
	mask = { keep_first = 0, keep_last = 3 },
	examples = {
		match = { "DNI 12345678Z", "NIE: X1234567L", "titular 48215679-C", "nie Y-7654321-G", "NIF: 12345678 Z",
			"dni=12345678z", "nie x1234567l", "titular: 12345678 z" },
		nomatch = {
			"DNI 12345678A",                -- letter wrong
			"NIE X1234567A",
			"dni build 20230101Z9",         -- glued to more
			"DNI 123456789Z",               -- nine digits
			"ref 12345678Z",                -- no Spanish word
		},
	},
}

M.nl_bsn = dlp.detector{
	name = "nl_bsn",
	description = "Dutch citizen service numbers (BSN, sofinummer): 9 digits passing the 11-proof, near "
		.. "BSN / burgerservicenummer / sofinummer",
	regex = [[(?<![\w\-/.])(\d{3}([ .-]?)\d{3}\2\d{3}|\d{4}\.\d{2}\.\d{3})(?![\w\-/]|\.\d)]],
	keywords = spellings({ "bsn", "burgerservicenummer", "sofinummer", "sofi nummer", "sofi" }),
	window = NEAR,
	boundary = true,
	group = 1,
	validate = "nl_bsn",
	severity = "high",
	mask = { keep_first = 0, keep_last = 3 },
	examples = {
		match = { "BSN: 111222333", "burgerservicenummer 1234.56.782" },
		nomatch = { "BSN: 123456789", "order 111222333", "bsn 1112223334" },
	},
}

M.it_cf = dlp.detector{
	name = "it_cf",
	description = "Italian codice fiscale: 16 characters (name and surname letters, birth date and place, digits "
		.. "or their omocodia letters), check letter verified, near codice fiscale or the words of an Italian "
		.. "form (nato, cognome...)",
	-- in lower case as typed into a form: only as a field's value, after
	-- = : " ' or > (the mark is matched, not looked behind for, so the words
	-- of prose are no place for a match to start: that cost a quarter of
	-- the pack's scan time)
	regex = [=[(?:(?<![A-Za-z0-9])([A-Z]{6}[\dLMNPQRSTUV]{2}[ABCDEHLMPRST][\dLMNPQRSTUV]{2}[A-Z][\dLMNPQRSTUV]{3}[A-Z])]=]
		.. [[|[=:"'>] ?([a-z]{6}[\dlmnpqrstuv]{2}[abcdehlmprst][\dlmnpqrstuv]{2}[a-z][\dlmnpqrstuv]{3}[a-z]))]]
		.. [[(?![A-Za-z0-9])]],
	keywords = spellings({ "codice fiscale", "cod fiscale", "cod. fisc", "cod fisc", "c.f.", "cf", "fiscal code",
		"tax code", "nato", "nata", "cognome", "residente" }),
	window = NEAR,
	group = "first",
	validate = "it_cf",
	boundary = true,
	confidence = { words = spellings({ "codice fiscale", "cod fiscale", "cod. fisc", "cod fisc", "c.f.", "cf",
		"fiscal code", "tax code" }) },
	severity = "high",
	mask = { keep_first = 0, keep_last = 2 },
	examples = {
		match = { "Codice fiscale: RSSMRA85T10A562S", "cf=BNCGPP70A41H501G", "CF RSSMRA85T10A56NH",
			"C.F.: RSSMRA85T10A562S", "{\"codiceFiscale\":\"rssmra85t10a562s\"}", "cf: rssmra85t10a562s" },
		nomatch = { "cf RSSMRA85T10A562T", "cf RSSMRA85T10A562SX", "cf XRSSMRA85T10A562S", "RSSMRA85T10A562S",
			"nato a roma, rssmra85t10a562s" },  -- lower case in prose, not a field's value
	},
}

M.passport = dlp.detector{
	name = "passport",
	description = "Passport numbers (US, UK, DE, FR, ES, IT, NL and similar shapes: 6-9 letters and digits "
		.. "holding digits) right after a passport word; no check digit, so medium at best",
	-- US A12345678 / 912803456, UK 9 digits, IT YA1234567, ES AAA123456,
	-- FR 09AA12345, DE C01X00T47, NL 2 letters, 6 letters or digits, a digit
	-- (no O): upper case only, as printed (in lower case the NL shape is any
	-- word ending in a digit)
	-- (a German number may be all letters: of an alphabet without vowels, so
	-- never a word)
	regex = [[(?<![A-Za-z0-9])((?=[A-Z0-9]{0,8}\d)(?:[A-Z]\d{7,8}|\d{9}|[A-Z]{2}\d{6,7}|[A-Z]{3}\d{6}]]
		.. [[|\d{2}[A-Z]{2}\d{5}|[A-NP-Z]{2}[A-NP-Z0-9]{6}\d)|[CFGHJK][0-9CFGHJKLMNPRTVWXYZ]{8})(?![A-Za-z0-9])]],
	keywords = { "passport", "passeport", "reisepass", "pasaporte", "passaporto", "paspoort", "passnummer" },
	window = { before = 0, after = 48 },
	boundary = true,
	group = 1,
	severity = "high",
	mask = { keep_first = 0, keep_last = 3 },
	examples = {
		match = {
			"Passport No: 912803456",
			"passport_number=X12345678",
			"Reisepass C01X00T47",
			"Reisepass-Nr. CFGHJKLMN",      -- DE, letters only
			"numéro de passeport 09AA12345",
			"pasaporte: PAA123456",         -- ES
			"{\"passportNo\": \"NWR1K5X73\"}",  -- NL
		},
		nomatch = {
			"passport photo guidelines",    -- no number
			"passport 1234",                -- too short
			"order 912803456",              -- no passport word
			"passport ABCDEFGHI",           -- no digit
			"passport NWO1K5X73",           -- NL never uses O
		},
	},
}

return M
