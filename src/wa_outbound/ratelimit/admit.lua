-- Decides every limit of one sender group in one call: pair pacing, the WABA's messaging limit,
-- the org's quota and per-second cap as acquire.lua decides them, then the sender's throughput
-- (plan.py and throughput.py are the same steps in Python). Only what every limit grants
-- consumes anything.
--
-- KEYS[1..3] the org's counter, limit and throttle (acquire.lua; unused when ARGV[5] is 0)
-- KEYS[4]    hash {bucket index: grants}: the sender's grants per 100 ms
-- KEYS[5]    sorted set {recipient: when reached (ms)}: the WABA's reached recipients (a cache of
--            the database's waba_reach), KEYS[6] present while that cache is loaded
-- KEYS[7..8] hashes {recipient: when the sender may next send to it (Unix s)} of this epoch
--            and the one before (an epoch is at least the pair interval: an older slot is past)
-- ARGV  now, sender mps, pair interval s, cap (-1: none), quota (1/0), n, epoch ms, then per
--       message (reaches 1/0, recipient), then acquire.lua's optional allotment tail (block ...
--       tat_floor).
-- Returns n when all n are granted; {-1, shortfall, tat_us} when the database must allot quota
-- first; {-2} when the reached recipients must be loaded; else {1, code, retry_ms, ...} per
-- message in ARGV's order: code 0 granted, 1 throughput, 2 pair_interval, 3 messaging_limit,
-- 4 quota.
local now = tonumber(ARGV[1])
local mps = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local quota_on = ARGV[5] == '1'
local n = tonumber(ARGV[6])
local epoch_ms = tonumber(ARGV[7])
local first_row = 8
local tail = first_row + 2 * n

if quota_on and ARGV[tail] then
  -- acquire.lua's allotment, at this script's offsets.
  local a = function(i) return ARGV[tail + i] end
  if tonumber(a(6)) >= tonumber(redis.call('HGET', KEYS[2], 'version') or '0') then
    redis.call('HSET', KEYS[2], 'limit', a(3), 'window', a(4), 'mps', a(5), 'version', a(6))
    redis.call('PEXPIREAT', KEYS[2], a(2))
    local start = tonumber(a(1))
    local have = tonumber(redis.call('HGET', KEYS[1], 'start') or '-1')
    if have <= start then
      if have == start then
        redis.call('HINCRBY', KEYS[1], 'allot', a(0))
      else
        redis.call('HSET', KEYS[1], 'used', 0, 'allot', a(0), 'start', a(1))
      end
      redis.call('HSET', KEYS[1], 'mps', a(5), 'checked', now)
      if tonumber(a(8)) > tonumber(redis.call('HGET', KEYS[1], 'tat') or '0') then
        redis.call('HSET', KEYS[1], 'tat', a(8))
      end
      redis.call('PEXPIREAT', KEYS[1], a(2))
    end
    if a(7) == '1' then
      redis.call('SET', KEYS[3], '1', 'PXAT', a(2))
    end
  end
end

-- The messaging limit's cache must be loaded before it can refuse anyone.
local reach_on = false
if cap >= 0 then
  for i = 0, n - 1 do
    if ARGV[first_row + 2 * i] == '1' then
      reach_on = true
      break
    end
  end
end
local reached = 0
if reach_on then
  if redis.call('EXISTS', KEYS[6]) == 0 then
    return {-2}
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', math.floor((now - 86400) * 1000))
  reached = redis.call('ZCARD', KEYS[5])
end
local function tier_retry()
  local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if not oldest[2] then
    return 300
  end
  return math.min(math.max(tonumber(oldest[2]) / 1000 + 86400 - now, 1), 300)
end

-- Throughput: the current 100 ms bucket and the eleven before it.
local bucket = math.floor(now / 0.1 + 1e-9)
local first = bucket - 11
local flat = redis.call('HGETALL', KEYS[4])
local used_t, oldest, newest = 0, nil, nil
for i = 1, #flat, 2 do
  local index = tonumber(flat[i])
  if index < first then
    redis.call('HDEL', KEYS[4], flat[i])
  else
    used_t = used_t + tonumber(flat[i + 1])
    if not oldest or index < oldest then
      oldest = index
    end
    if not newest or index > newest then
      newest = index
    end
  end
end
local room = math.max(1, math.floor(mps + 1e-9)) - used_t

-- Commands over a long list go in chunks (Lua's unpack has a limit).
local function chunked(command, key, list, step)
  if #list == 0 then
    return {}
  end
  if #list <= step then
    return redis.call(command, key, unpack(list))
  end
  local out = {}
  for from = 1, #list, step do
    local got = redis.call(command, key, unpack(list, from, math.min(from + step - 1, #list)))
    if type(got) == 'table' then
      for i = 1, #got do
        out[#out + 1] = got[i]
      end
    end
  end
  return out
end

-- The pair slots of the batch's recipients, the newer epoch's first.
local slots = {}
if interval > 0 then
  local phones = {}
  for i = 0, n - 1 do
    phones[#phones + 1] = ARGV[first_row + 2 * i + 1]
  end
  local older = chunked('HMGET', KEYS[8], phones, 1000)
  local newer = chunked('HMGET', KEYS[7], phones, 1000)
  for i = 1, n do
    local at = newer[i] or older[i]
    if at then
      slots[phones[i]] = tonumber(at)
    end
  end
end

-- Pass one: pair pacing and the messaging limit, oldest message first.
local codes, retries, passing = {}, {}, {}
local fresh = {}
for i = 1, n do
  local base = first_row + 2 * (i - 1)
  local reaches, phone = ARGV[base] == '1', ARGV[base + 1]
  if interval > 0 then
    local slot = slots[phone] or 0
    -- Whatever happens to this message, the next one to this recipient comes after it.
    slots[phone] = math.max(slot, now) + interval
    if slot > now + 1e-9 then
      codes[i], retries[i] = 2, slot - now
    end
  end
  if not codes[i] and reaches and cap >= 0 and not fresh[phone]
      and not redis.call('ZSCORE', KEYS[5], phone) then
    if reached >= cap then
      codes[i], retries[i] = 3, tier_retry()
    else
      reached = reached + 1
      fresh[phone] = true
    end
  end
  if not codes[i] then
    passing[#passing + 1] = i
  end
end

-- Pass two: the org's quota and per-second cap for as many as passed, then the sender's
-- throughput takes the oldest of what the quota allows.
local got, quota_retry = #passing, 0
if quota_on and got > 0 then
  local state = redis.call('HMGET', KEYS[1], 'used', 'allot', 'tat', 'mps', 'checked')
  local used = tonumber(state[1])
  local avail = 0
  if used then
    avail = tonumber(state[2]) - used
  end
  local tat = tonumber(state[3] or '0')
  if not used or not state[4] or now - tonumber(state[5] or '0') > 60 then
    return {-1, math.max(0, got - avail), math.floor(tat * 1000000)}
  end
  local omps = tonumber(state[4])
  local burst = math.max(1, omps)
  local start = math.max(tat, now)
  local want = got
  if omps > 0 then
    want = math.min(want, math.max(0, math.floor((now - start) * omps + burst + 1e-9)))
  end
  local throttled = -2
  if avail < want then
    throttled = redis.call('PTTL', KEYS[3])
    if throttled < 0 then
      return {-1, want - avail, math.floor(tat * 1000000)}
    end
  end
  local allowed = math.min(want, avail)
  local taken = math.min(allowed, math.max(0, room))
  if taken > 0 then
    if omps > 0 then
      tat = start + taken / omps
    end
    redis.call('HSET', KEYS[1], 'used', used + taken, 'tat', tat)
  end
  if allowed < got then
    if omps > 0 then
      quota_retry = math.max(0, tat + (1 - burst) / omps - now)
    end
    if allowed == avail and throttled >= 0 then
      quota_retry = math.max(quota_retry, throttled / 1000)
    end
  end
  got = allowed
end
local granted = math.min(got, math.max(0, room))

-- Consume for what every limit granted.
local now_ms = math.floor(now * 1000)
local pair_set = {}
-- The next slot as %.17g (no precision lost), formatted once for every recipient.
local next_slot = string.format('%.17g', now + interval)
for j = 1, #passing do
  local i = passing[j]
  local base = first_row + 2 * (i - 1)
  if j <= granted then
    codes[i], retries[i] = 0, 0
    if interval > 0 then
      pair_set[#pair_set + 1] = ARGV[base + 1]
      pair_set[#pair_set + 1] = next_slot
    end
    if reach_on and ARGV[base] == '1' then
      redis.call('ZADD', KEYS[5], now_ms, ARGV[base + 1])
    end
  elseif j <= got then
    codes[i] = 1
  else
    codes[i], retries[i] = 4, quota_retry
  end
end
if #pair_set > 0 then
  chunked('HSET', KEYS[7], pair_set, 1000)
  redis.call('PEXPIRE', KEYS[7], 2 * epoch_ms + 1000)
end
if granted > 0 then
  redis.call('HINCRBY', KEYS[4], bucket, granted)
  -- A grant earlier in this bucket set the expiry to at least the bucket's start plus 2 s,
  -- past the 1.2 s its counts are read: only the bucket's first grant sets it.
  if newest ~= bucket then
    redis.call('PEXPIRE', KEYS[4], 2000)
  end
  if not oldest or bucket < oldest then
    oldest = bucket
  end
  if reach_on then
    redis.call('PEXPIRE', KEYS[5], 90000000)
  end
end
local tput_retry = 0
if oldest then
  tput_retry = math.max(0, (oldest + 12) * 0.1 - now)
end

if granted == n then
  return n  -- all granted, the common case: an integer is the cheapest reply to parse
end
local reply = {1}
for i = 1, n do
  if codes[i] == 1 then
    retries[i] = tput_retry
  end
  reply[#reply + 1] = codes[i]
  reply[#reply + 1] = math.ceil(retries[i] * 1000)
end
return reply
