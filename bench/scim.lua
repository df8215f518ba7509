-- wrk script for the scimlite benchmark: one scenario per run, chosen by the first argument.
--   wrk -t1 -c8 -d10s -s bench/scim.lua http://127.0.0.1:PORT -- SCENARIO DATADIR TOKEN BASEPATH [LIMIT]
-- DATADIR holds ids.txt, names.txt and groups.txt (one value a line), written by bench/run.py:
-- the ids and userNames of a random sample of the users, at most 100,000 whatever their number,
-- so that every size loads as much; users.txt, how many users there are (list_page's range);
-- and for seats_provision tokens.txt, the workshop seats' tokens.

local scenario, datadir, token, base, limit, prefix
local ids, names, groups, seat_tokens = {}, {}, {}, {}
local users, counter, created = 0, 0, 0

local function lines(path)
  local found = {}
  local file = io.open(path, "r")
  if file then
    for line in file:lines() do found[#found + 1] = line end
    file:close()
  end
  return found
end

local function pick(list)
  return list[math.random(#list)]
end

local function headers(as)
  return {
    ["Authorization"] = "Bearer " .. (as or token),
    ["Accept"] = "application/scim+json",
    ["Content-Type"] = "application/scim+json; charset=utf-8",
    ["User-Agent"] = "Okta SCIM Client 1.0.0",
  }
end

local function quoted(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function user_body(user_name, extra)
  return '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. user_name ..
    '","name":{"givenName":"Bench","familyName":"User"},"emails":[{"primary":true,"value":"' ..
    user_name .. '","type":"work"}],"displayName":"Bench User","locale":"en-US","externalId":"' ..
    user_name .. '","groups":[],"password":"Not-stored-1","active":true' .. (extra or "") .. '}'
end

local patch_schema = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":'

function init(args)
  scenario, datadir, token, base = args[1], args[2], args[3], args[4]
  limit = tonumber(args[5] or "0")
  counter = tonumber(args[6] or "0")
  prefix = args[7] or "user"
  math.randomseed(os.time() * 1000 + os.clock() * 1000000)
  ids = lines(datadir .. "/ids.txt")
  names = lines(datadir .. "/names.txt")
  groups = lines(datadir .. "/groups.txt")
  seat_tokens = lines(datadir .. "/tokens.txt")
  users = tonumber(lines(datadir .. "/users.txt")[1] or "0") or 0
  if users < #ids then users = #ids end
end

local scenarios = {}

-- Okta's provisioning: a lookup by userName, then the create; LIMIT users, then stop.
-- PREFIX makes this run's userNames its own: a create still in flight when an earlier
-- run stopped cannot collide with this one's. Each user's two requests carry the
-- token `token_of(its number)` gives.
local lookup_next = true
local function okta_provision(token_of)
  return function()
    if created >= limit then
      wrk.thread:stop()
      return wrk.format("GET", base .. "/ServiceProviderConfig", headers())
    end
    local user_name = string.format("%s%07d@bench.example", prefix, counter)
    local as = token_of(counter)
    if lookup_next then
      lookup_next = false
      return wrk.format("GET", base .. "/Users?filter=userName%20eq%20%22" .. quoted(user_name) ..
        "%22&startIndex=1&count=100", headers(as))
    end
    lookup_next, counter, created = true, counter + 1, created + 1
    return wrk.format("POST", base .. "/Users", headers(as), user_body(user_name))
  end
end

scenarios.provision = okta_provision(function() return token end)

-- A workshop provisioning at once: Okta's flow, each user in the next seat's data
-- (the seats in turn, tokens.txt), so that all the seats work however few the
-- connections; TOKEN (the server's own) only asks for the spec when done.
scenarios.seats_provision = okta_provision(function(number)
  return seat_tokens[number % #seat_tokens + 1]
end)

-- Creates without the lookup first, LIMIT users: one POST /Users a user, or
-- (bulk_create) one POST /Bulk of up to BULK_SIZE POSTs. Then cheap GETs until the
-- run ends, not wrk.thread:stop(), which drops the creates still in flight: with a
-- LIMIT of a few, none might land, and bench/run.py would wait for them forever.
local BULK_SIZE = 100

local function idle()
  return wrk.format("GET", base .. "/ServiceProviderConfig", headers())
end

-- wrk calls the first thread's request() once before the run, to check what it
-- returns, and never sends that request: a create there would be counted, not made.
local checked = false

local function first_call()
  local first = not checked
  checked = true
  return first
end

local function next_user_name()
  local user_name = string.format("%s%07d@bench.example", prefix, counter)
  counter, created = counter + 1, created + 1
  return user_name
end

scenarios.create = function()
  if first_call() or created >= limit then return idle() end
  return wrk.format("POST", base .. "/Users", headers(), user_body(next_user_name()))
end

scenarios.bulk_create = function()
  if first_call() or created >= limit then return idle() end
  local operations = {}
  for i = 1, math.min(BULK_SIZE, limit - created) do
    operations[i] = '{"method":"POST","path":"/Users","bulkId":"b' .. counter .. '","data":' ..
      user_body(next_user_name()) .. '}'
  end
  return wrk.format("POST", base .. "/Bulk", headers(),
    '{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[' ..
    table.concat(operations, ",") .. ']}')
end

scenarios.ceiling = function()
  return wrk.format("GET", "/ping", headers())
end

scenarios.get_by_id = function()
  return wrk.format("GET", base .. "/Users/" .. pick(ids), headers())
end

scenarios.filter_eq = function()
  return wrk.format("GET", base .. "/Users?filter=userName%20eq%20%22" .. quoted(pick(names)) ..
    "%22&startIndex=1&count=100", headers())
end

scenarios.list_page = function()
  local start = math.random(math.max(1, users - 99))
  return wrk.format("GET", base .. "/Users?startIndex=" .. start .. "&count=100", headers())
end

scenarios.patch_deactivate = function()
  local active = math.random(2) == 1 and "false" or "true"
  return wrk.format("PATCH", base .. "/Users/" .. pick(ids), headers(),
    patch_schema .. '[{"op":"replace","value":{"active":' .. active .. '}}]}')
end

scenarios.put_replace = function()
  local index = math.random(#ids)
  local body = user_body(names[index], ',"id":"' .. ids[index] .. '","title":"Title ' .. math.random(1000) .. '"')
  return wrk.format("PUT", base .. "/Users/" .. ids[index], headers(), body)
end

-- Okta's membership PATCH: remove one member and add another, in one request.
scenarios.group_members = function()
  local out, into = pick(ids), pick(ids)
  return wrk.format("PATCH", base .. "/Groups/" .. pick(groups), headers(),
    patch_schema .. '[{"op":"remove","path":"members[value eq \\"' .. out .. '\\"]"},' ..
    '{"op":"add","path":"members","value":[{"value":"' .. into .. '","display":"x"}]}]}')
end

-- What an Okta org does to an app in a day, roughly: lookups and reads, some updates.
local mix = {
  {40, "filter_eq"}, {25, "get_by_id"}, {15, "patch_deactivate"},
  {10, "put_replace"}, {5, "group_members"}, {5, "list_page"},
}

scenarios.mixed = function()
  local roll, total = math.random(100), 0
  for _, entry in ipairs(mix) do
    total = total + entry[1]
    if roll <= total then return scenarios[entry[2]]() end
  end
end

function request()
  return scenarios[scenario]()
end
