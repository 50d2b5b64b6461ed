-- A policy that acts on confidence (rules/tests/ident_test.lua runs
-- against it): findings the pii pack is sure of block the request, those
-- of medium confidence are masked, low ones pass.
--   ./build/dlpgate test rules/tests/ident_policy.lua rules/tests/ident_test.lua
local dlp = require "dlp"
local pii = require "pii"

function on_request(req, flow)
	local sure = req:scan(pii, { min_confidence = "high" })
	if next(sure) then
		return dlp.block("sure: " .. dlp.names(sure), sure)
	end
	local likely = req:scan(pii, { min_confidence = "medium" })
	if next(likely) then
		return dlp.redact(likely)
	end
	return dlp.pass()
end
