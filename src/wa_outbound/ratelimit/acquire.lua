-- Decides in one round trip how many of n messages an organisation may send now.
--
-- KEYS[1] counter  hash {used, allot, start}: messages granted here in the window, the quota
--                  the database has allotted to Redis in it, the window's start (ms); it
--                  expires when the window ends.
-- KEYS[2] limit    hash {limit, window, mps, version}: the org's limits, cached for 60 s.
-- KEYS[3] throttle present while the database has no quota left in the window (TTL: its end).
-- KEYS[4] tat      GCRA theoretical arrival time of the next message (Unix seconds).
-- ARGV  n [, block, start_ms, end_ms, limit, window_s, mps, version_ms, exhausted, tat_floor]
--       the optional tail applies an allotment just committed to the database.
-- Returns {granted, retry_us}, or {-1, shortfall, tat} when the database must allot more first.
local n = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

if ARGV[2] then
  local version = tonumber(ARGV[8])
  -- An allotment made under limits older than the cached ones is dropped: the database keeps
  -- counting it as used, so dropping it can only under-grant.
  if version >= tonumber(redis.call('HGET', KEYS[2], 'version') or '0') then
    redis.call('HSET', KEYS[2], 'limit', ARGV[5], 'window', ARGV[6], 'mps', ARGV[7],
      'version', ARGV[8])
    redis.call('PEXPIRE', KEYS[2], 60000)
    local start = tonumber(ARGV[3])
    local have = tonumber(redis.call('HGET', KEYS[1], 'start') or '-1')
    if have == start then
      redis.call('HINCRBY', KEYS[1], 'allot', ARGV[2])
    elseif have < start then
      redis.call('DEL', KEYS[1])
      redis.call('HSET', KEYS[1], 'used', 0, 'allot', ARGV[2], 'start', ARGV[3])
    end
    if have <= start then
      redis.call('PEXPIREAT', KEYS[1], ARGV[4])
    end
    if ARGV[9] == '1' then
      redis.call('SET', KEYS[3], '1', 'PXAT', ARGV[4])
    end
    local floor = tonumber(ARGV[10])
    if floor > tonumber(redis.call('GET', KEYS[4]) or '0') then
      redis.call('SET', KEYS[4], ARGV[10], 'PXAT', math.ceil(floor * 1000) + 1000)
    end
  end
end

local mps = tonumber(redis.call('HGET', KEYS[2], 'mps') or '0')
local counter = redis.call('HMGET', KEYS[1], 'used', 'allot')
local avail = 0
if counter[1] then
  avail = tonumber(counter[2]) - tonumber(counter[1])
end
local tat = tonumber(redis.call('GET', KEYS[4]) or '0')
if mps <= 0 or not counter[1] then
  return {-1, math.max(0, n - avail), string.format('%.6f', tat)}
end

local burst = math.max(1, mps)
local start = math.max(tat, now)
local by_rate = math.max(0, math.floor((now - start) * mps + burst + 1e-9))
local want = math.min(n, by_rate)
local throttled = redis.call('PTTL', KEYS[3])
if avail < want and throttled < 0 then
  return {-1, want - avail, string.format('%.6f', tat)}
end

local granted = math.min(want, avail)
if granted > 0 then
  redis.call('HINCRBY', KEYS[1], 'used', granted)
  tat = start + granted / mps
  redis.call('SET', KEYS[4], string.format('%.6f', tat), 'PXAT', math.ceil(tat * 1000) + 1000)
end
local retry = 0
if granted < n then
  retry = math.max(0, tat + (1 - burst) / mps - now)
  if granted == avail and throttled >= 0 then
    retry = math.max(retry, throttled / 1000)
  end
end
return {granted, math.ceil(retry * 1000000)}
