-- Identity and tax numbers of rules/pii.lua, and confidence, through
-- rules/tests/ident_policy.lua (blocks high, masks medium, passes low):
--   ./build/dlpgate test rules/tests/ident_policy.lua rules/tests/ident_test.lua
-- A number next to its words is high; a checksummed number alone is
-- medium; a number with no checksum alone is low; near misses are nothing.

local C = require "tests.cases"
local JSON, FORM = C.JSON, C.FORM

local function sure(name, detector, body, opts)
	return { name = name, request = C.request(body, opts),
		expect = { verdict = "block", detectors = { detector }, confidence = { [detector] = "high" } } }
end

local function masked(name, detector, body, want, opts)
	return { name = name, request = C.request(body, opts),
		expect = { verdict = "redact", detectors = { detector }, confidence = { [detector] = "medium" }, body = want } }
end

-- 400 bytes that keep a number out of reach of words before it
local FAR = string.rep("lorem ipsum ", 34)

return {
	sure("NINO with its words", "uk_nino", "National Insurance number: AB123456C"),
	sure("SIN in JSON", "ca_sin", "{\"sin\":\"130456270\"}", { headers = JSON }),
	sure("CPF with its word", "br_cpf", "CPF: 529.982.247-25"),
	sure("bare CPF after the word", "br_cpf_labeled", "cpf=52998224725", { headers = FORM }),
	sure("CNPJ with its word", "br_cnpj", "CNPJ 11.222.333/0001-81"),
	sure("bare CNPJ after the word", "br_cnpj_labeled", "cnpj: 11222333000181"),
	sure("PAN", "in_pan", "PAN: ABCPE1234F"),
	sure("Aadhaar", "in_aadhaar", "Aadhaar: 2341 2341 2346"),
	sure("Steuer-ID", "de_steuer_id", "Steuer-ID: 86095742719"),
	sure("NIR with Corsica's 2A", "fr_nir", "NIR 1 85 02 2A 012 345 31"),
	sure("DNI with its word", "es_dni", "DNI 12345678Z"),
	sure("NIE with its word", "es_dni", "NIE: X1234567L"),
	sure("BSN", "nl_bsn", "BSN: 111222333"),
	sure("codice fiscale with its words", "it_cf", "Codice fiscale: RSSMRA85T10A562S"),

	-- as forms and APIs write them (tests/bench/recall.py measures all of
	-- these): labels as keys, lower case, encoded, wrapped over two lines
	sure("NINO under a snake_case key", "uk_nino", "{\"national_insurance_number\": \"AB 12 34 56 C\"}",
		{ headers = JSON }),
	sure("SIN under a camelCase key", "ca_sin", "{\"sinNumber\":\"130-456-270\"}", { headers = JSON }),
	sure("Steuer-ID in a form field", "de_steuer_id", "steuer_id=86+095+742+719", { headers = FORM }),
	sure("codice fiscale typed in lower case", "it_cf", "{\"codiceFiscale\":\"rssmra85t10a562s\"}",
		{ headers = JSON }),
	sure("codice fiscale after C.F.", "it_cf", "C.F.: RSSMRA85T10A562S"),
	sure("DNI with a spaced letter", "es_dni", "NIF: 12345678 Z"),
	sure("NINO wrapped", "uk_nino", "NINO: AB 12 34\n56 C thanks"),
	sure("NIR wrapped before Corsica's 2A", "fr_nir", "NIR: 1 85 02\n2A 012 345 31 thanks"),
	sure("Steuer-ID wrapped, its label on the line above", "de_steuer_id", "Steuer-ID:\n86 095\n742 719"),

	-- checksummed, near only a weak word (one of the forms it is written in): medium, masked
	masked("CPF near 'cliente'", "br_cpf", "cliente 529.982.247-25", "cliente ***.***.***-25"),
	masked("DNI near 'titular'", "es_dni", "titular 48215679C", "titular ******79C"),
	masked("codice fiscale near 'nato'", "it_cf", "nato a Roma, RSSMRA85T10A562S", "nato a Roma, **************2S"),
	masked("NINO near 'payroll'", "uk_nino", "payroll: AB123456C", "payroll: AB******C"),
	-- the strong word more than 300 bytes before: still medium
	masked("CPF word out of reach", "br_cpf", "cpf " .. FAR .. "cliente 529.982.247-25",
		"cpf " .. FAR .. "cliente ***.***.***-25"),
	-- passport numbers have no check digit: medium with their word
	masked("passport", "passport", "Passport No: 912803456", "Passport No: ******456"),

	-- no word at all: not looked for
	C.clean("NINO alone", FAR .. "AB123456C"),
	C.clean("CPF alone", "529.982.247-25"),

	-- near misses: nothing at all
	C.clean("CPF check digit wrong", "CPF: 529.982.247-26"),
	C.clean("SIN Luhn wrong", "SIN: 130 456 271"),
	C.clean("Aadhaar Verhoeff wrong", "Aadhaar: 2341 2341 2345"),
	C.clean("Steuer-ID without a repeated digit", "Steuer-ID 47158369024"),
	C.clean("NIR key wrong", "NIR 1 84 06 76 451 089 48"),
	C.clean("DNI letter wrong", "DNI 12345678A"),
	C.clean("BSN fails the 11-proof", "BSN: 123456789"),
	C.clean("codice fiscale check letter wrong", "Codice fiscale: RSSMRA85T10A562T"),
	C.clean("CNPJ in a longer number", "CNPJ 11.222.333/0001-810"),
	C.clean("SIN without its word", "order 130 456 270 shipped"),
}
