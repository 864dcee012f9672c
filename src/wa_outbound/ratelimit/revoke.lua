-- Takes back the allotment Redis has not used yet and caches new limits, atomically; the next
-- decision then reloads the limits from the database (its `checked` is reset).
-- KEYS: counter, limit, throttle. ARGV: limit, window_s, mps, version_ms.
-- Returns {unused, window start ms} ({0, -1} when there was no counter).
local counter = redis.call('HMGET', KEYS[1], 'used', 'allot', 'start')
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[2], 'limit', ARGV[1], 'window', ARGV[2], 'mps', ARGV[3],
  'version', ARGV[4])
if not counter[1] then
  return {0, -1}
end
redis.call('HSET', KEYS[1], 'allot', counter[1], 'mps', ARGV[3], 'checked', '0')
return {tonumber(counter[2]) - tonumber(counter[1]), tonumber(counter[3])}
