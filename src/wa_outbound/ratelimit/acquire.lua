-- Decides in one round trip how many of n messages an organisation may send now.
--
-- KEYS[1] counter  hash {used, allot, start, tat, mps, checked}: messages granted here in the
--                  window, the quota the database has allotted to Redis in it, the window's
--                  start (ms), the GCRA theoretical arrival time of the next message (Unix s),
--                  the per-second cap and when it was last read from the database. It expires
--                  when the window ends. One hash keeps the hot path at two commands.
-- KEYS[2] limit    hash {limit, window, mps, version}: the limits the database last sent.
-- KEYS[3] throttle present while the database has no quota left in the window (TTL: its end).
-- ARGV  n, now [, block, start_ms, end_ms, limit, window_s, mps, version_ms, exhausted,
--       tat_floor]: now is the caller's clock (Unix s), the one the database limiter uses too;
--       the optional tail applies an allotment just committed to the database.
-- Returns n when all n are granted (an integer reply is the cheapest to parse), else
-- {granted, retry_us}, or {-1, shortfall, tat_us} when the database must allot first.
local n = tonumber(ARGV[1])
local now = tonumber(ARGV[2])

if ARGV[3] then
  -- An allotment made under limits older than the cached ones is dropped: the database keeps
  -- counting it as used, so dropping it can only under-grant.
  if tonumber(ARGV[9]) >= tonumber(redis.call('HGET', KEYS[2], 'version') or '0') then
    redis.call('HSET', KEYS[2], 'limit', ARGV[6], 'window', ARGV[7], 'mps', ARGV[8],
      'version', ARGV[9])
    redis.call('PEXPIREAT', KEYS[2], ARGV[5])
    local start = tonumber(ARGV[4])
    local have = tonumber(redis.call('HGET', KEYS[1], 'start') or '-1')
    if have <= start then
      if have == start then
        redis.call('HINCRBY', KEYS[1], 'allot', ARGV[3])
      else
        -- A new window: the old allotment is void (the tat carries over).
        redis.call('HSET', KEYS[1], 'used', 0, 'allot', ARGV[3], 'start', ARGV[4])
      end
      redis.call('HSET', KEYS[1], 'mps', ARGV[8], 'checked', now)
      if tonumber(ARGV[11]) > tonumber(redis.call('HGET', KEYS[1], 'tat') or '0') then
        redis.call('HSET', KEYS[1], 'tat', ARGV[11])
      end
      redis.call('PEXPIREAT', KEYS[1], ARGV[5])
    end
    if ARGV[10] == '1' then
      redis.call('SET', KEYS[3], '1', 'PXAT', ARGV[5])
    end
  end
end

local state = redis.call('HMGET', KEYS[1], 'used', 'allot', 'tat', 'mps', 'checked')
local used = tonumber(state[1])
local avail = 0
if used then
  avail = tonumber(state[2]) - used
end
local tat = tonumber(state[3] or '0')
-- Limits are re-read from the database at least once a minute (a change made while this Redis
-- was unreachable reaches it that way).
if not used or not state[4] or now - tonumber(state[5] or '0') > 60 then
  return {-1, math.max(0, n - avail), math.floor(tat * 1000000)}
end

-- mps 0: the org has no per-second cap of its own.
local mps = tonumber(state[4])
local burst = math.max(1, mps)
local start = math.max(tat, now)
local want = n
if mps > 0 then
  want = math.min(n, math.max(0, math.floor((now - start) * mps + burst + 1e-9)))
end
local throttled = -2
if avail < want then
  throttled = redis.call('PTTL', KEYS[3])
  if throttled < 0 then
    return {-1, want - avail, math.floor(tat * 1000000)}
  end
end

local granted = math.min(want, avail)
if granted > 0 then
  if mps > 0 then
    tat = start + granted / mps
  end
  redis.call('HSET', KEYS[1], 'used', used + granted, 'tat', tat)
end
if granted == n then
  return n
end
local retry = 0
if mps > 0 then
  retry = math.max(0, tat + (1 - burst) / mps - now)
end
if granted == avail and throttled >= 0 then
  retry = math.max(retry, throttled / 1000)
end
return {granted, math.ceil(retry * 1000000)}
