-- A policy that scans request bodies with all three packs and blocks on
-- any finding, naming the detectors (sorted) in the reason. The pack tests
-- (pii_test.lua, secrets_test.lua, finance_test.lua) run against it:
--   ./build/dlpgate test rules/tests/pack_policy.lua rules/tests/secrets_test.lua
local dlp = require "dlp"
local pii = require "pii"
local secrets = require "secrets"
local finance = require "finance"

local all = dlp.merge(pii, secrets, finance)

function on_request(req, flow)
	local found = req:scan(all)
	if next(found) then
		local names = {}
		for name in pairs(found) do
			names[#names + 1] = name
		end
		table.sort(names)
		return dlp.block("found " .. table.concat(names, ","), found)
	end
	return dlp.pass()
end
