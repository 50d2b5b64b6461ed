-- dlp: the module every policy requires. The verdicts, the detector
-- constructor, host matching and the validators are C (engine/policy/ldlp.c)
-- so that a verdict knows the file:line that gave it; this file adds what is
-- easier to say in Lua. It receives the C functions as its argument.
local c = ...
local dlp = {}
for k, v in pairs(c) do dlp[k] = v end

-- Total number of findings in a found table (what req:scan returned).
function dlp.count(found)
  local n = 0
  for _, f in pairs(found or {}) do n = n + (f.count or 0) end
  return n
end

-- True if any of the named detectors found something.
function dlp.any(found, ...)
  for _, name in ipairs({...}) do
    if found and found[name] then return true end
  end
  return false
end

-- The found table restricted to some detectors: a list of names, or a
-- detectors table (its keys are the names).
function dlp.only(found, names)
  local out = {}
  if not found then return out end
  if #names > 0 then
    for _, name in ipairs(names) do out[name] = found[name] end
  else
    for name in pairs(names) do out[name] = found[name] end
  end
  return out
end

-- The names in a found table, sorted and joined with ", " (for reasons).
function dlp.names(found)
  local list = {}
  for name in pairs(found or {}) do list[#list + 1] = name end
  table.sort(list)
  return table.concat(list, ", ")
end

-- Merges detector tables (packs) into one, later ones winning on names.
function dlp.merge(...)
  local out = {}
  for _, t in ipairs({...}) do
    for k, v in pairs(t) do out[k] = v end
  end
  return out
end

return dlp
