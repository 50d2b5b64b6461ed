-- rules/tests/cases.lua: what the rule test files share.
--   local cases = require "tests.cases"
-- Fake credentials are assembled at load time (cases.fake) so that no
-- file here holds a string a secret scanner or a push-protection hook
-- would stop.
local M = {}

M.ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
M.UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
M.LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
M.HEX = "0123456789abcdef"
M.B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
M.B64 = M.ALNUM .. "+/"
M.URLSAFE = M.ALNUM .. "_-"
M.LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
M.DIGITS = "0123456789"

M.JSON = { ["Content-Type"] = "application/json" }
M.FORM = { ["Content-Type"] = "application/x-www-form-urlencoded" }
M.MULTIPART = { ["Content-Type"] = "multipart/form-data; boundary=XYZ" }

-- n characters of alphabet (ALNUM by default), the same for the same seed
function M.fake(seed, n, alphabet)
	alphabet = alphabet or M.ALNUM
	local x, t = seed, {}
	for i = 1, n do
		x = (x * 1103515245 + 12345) % 2147483648
		local k = (x >> 16) % #alphabet + 1
		t[i] = alphabet:sub(k, k)
	end
	return table.concat(t)
end

-- A PEM block of `lines` 64-character lines
function M.pem(label, seed, lines)
	local t = { "-----BEGIN " .. label .. "-----" }
	for i = 1, lines do
		t[#t + 1] = M.fake(seed + i, 64, M.B64)
	end
	t[#t + 1] = M.fake(seed, 24, M.B64) .. "=="
	t[#t + 1] = "-----END " .. label .. "-----"
	return table.concat(t, "\n")
end

-- {body = body} plus opts (headers, method, encoding...)
function M.request(body, opts)
	local r = { body = body }
	for k, v in pairs(opts or {}) do
		r[k] = v
	end
	return r
end

-- A case where the policy blocks, naming these detectors (a name or a list)
function M.found(name, detectors, body, opts)
	if type(detectors) == "string" then
		detectors = { detectors }
	end
	return { name = name, request = M.request(body, opts), expect = { verdict = "block", detectors = detectors } }
end

-- A case where nothing is found and the message passes
function M.clean(name, body, opts)
	return { name = name, request = M.request(body, opts), expect = { verdict = "pass", clean = true } }
end

-- A case where the forwarded body must be exactly `want`
function M.redacts(name, body, want, opts)
	return { name = name, request = M.request(body, opts), expect = { verdict = "redact", body = want } }
end

return M
