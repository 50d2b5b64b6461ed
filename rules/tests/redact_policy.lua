-- A policy that redacts whatever the three packs find, so that
-- redact_test.lua can check what each detector masks (its capture group)
-- and what it leaves visible (its mask):
--   ./build/dlpgate test rules/tests/redact_policy.lua rules/tests/redact_test.lua
local dlp = require "dlp"
local all = dlp.merge(require "pii", require "secrets", require "finance")

function on_request(req, flow)
	local found = req:scan(all)
	if next(found) then
		return dlp.redact(found)
	end
	return dlp.pass()
end
