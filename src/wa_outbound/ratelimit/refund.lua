-- Gives back quota that acquire.lua granted to messages another limit then refused: the
-- shared sender's orgs are asked before its own limits (their keys live in other slots).
-- KEYS[1] the org's counter. ARGV[1] how many. A counter gone (its window ended) is left alone.
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '-1')
if used >= 0 then
  redis.call('HSET', KEYS[1], 'used', math.max(0, used - tonumber(ARGV[1])))
end
return 1
