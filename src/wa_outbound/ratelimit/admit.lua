-- Decides every limit of one org's sender groups in one call, sender after sender as separate
-- calls would: pair pacing, the WABA's messaging limit, the org's quota and per-second cap as
-- acquire.lua decides them, then the sender's throughput (plan.py and throughput.py are the
-- same steps in Python). Only what every limit grants consumes anything. The org's counter,
-- the senders' throughput counts and their pair slots are read once and written once a call.
--
-- KEYS[1..3] the org's counter, limit and throttle (acquire.lua; unused when quota is 0)
-- KEYS[4]    hash {sender: msgpack {bucket, grants, ...}}: each sender's grants per 100 ms
-- KEYS[5..6] hashes {sender:recipient: when the sender may next send to it (Unix s)} of this
--            epoch and the one before (an epoch is at least the pair interval: an older slot
--            is past)
-- KEYS[5+2s] sorted set {recipient: when reached (ms)}: sender s's WABA's reached recipients
--            (a cache of the database's waba_reach), KEYS[6+2s] present while it is loaded
-- ARGV  now, pair interval s, quota (1/0), epoch ms, S (senders), then per sender (id, mps,
--       cap (-1: none), n, whether each message reaches: a '1' or '0' a message), then per
--       message in the senders' order its pair field (sender id:recipient), then acquire.lua's
--       optional allotment tail (block ... tat_floor).
-- Returns the number of messages when all are granted; {-2, s} when sender s's reached
-- recipients must be loaded (nothing decided); {-1, s, shortfall, tat_us, code, retry_ms, ...}
-- when the database must allot quota before sender s can be decided (the pairs are those of
-- the senders before s, which were decided); else {1, code, retry_ms, ...} per message: code 0
-- granted, 1 throughput, 2 pair_interval, 3 messaging_limit, 4 quota.
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local quota_on = ARGV[3] == '1'
local epoch_ms = tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local first_row = 6 + 5 * count
-- Sender s's settings start at ARGV[1 + 5s]; its messages are starts[s] .. stops[s], message
-- i's field at ARGV[first_row + i - 1] (the recipient from its 34th byte on).
local starts, stops, total = {}, {}, 0
for s = 1, count do
  starts[s] = total + 1
  total = total + tonumber(ARGV[4 + 5 * s])
  stops[s] = total
end
local last_row = first_row + total - 1
local tail = last_row + 1

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

-- A messaging limit's cache must be loaded before it can refuse anyone.
local reach_on = {}
for s = 1, count do
  if tonumber(ARGV[3 + 5 * s]) >= 0 and string.find(ARGV[5 + 5 * s], '1', 1, true) then
    if redis.call('EXISTS', KEYS[6 + 2 * s]) == 0 then
      return {-2, s}
    end
    reach_on[s] = true
  end
end

-- Commands over a long list go in chunks (Lua's unpack has a limit): list[from .. to].
local function chunked(command, key, list, from, to)
  if to < from then
    return {}
  end
  if to - from < 1000 then
    return redis.call(command, key, unpack(list, from, to))
  end
  local out = {}
  for start = from, to, 1000 do
    local got = redis.call(command, key, unpack(list, start, math.min(start + 999, to)))
    if type(got) == 'table' then
      for i = 1, #got do
        out[#out + 1] = got[i]
      end
    end
  end
  return out
end

-- The pair slots of every message's (sender, recipient), the newer epoch's first. A slot in
-- the older epoch's hash was granted before this epoch began, so it is past once this epoch is
-- a pair interval old: that hash is read only before then.
local slots = {}
if interval > 0 then
  local newer = chunked('HMGET', KEYS[5], ARGV, first_row, last_row)
  local older = {}
  if now * 1000 < (math.floor(now * 1000 / epoch_ms) * epoch_ms) + interval * 1000 + 1 then
    older = chunked('HMGET', KEYS[6], ARGV, first_row, last_row)
  end
  for i = 1, total do
    local at = newer[i] or older[i]
    if at then
      slots[ARGV[first_row + i - 1]] = tonumber(at)
    end
  end
end

-- Throughput: each sender's current 100 ms bucket and the eleven before it.
local bucket = math.floor(now / 0.1 + 1e-9)
local first = bucket - 11
local ids = {}
for s = 1, count do
  ids[s] = ARGV[1 + 5 * s]
end
local counts = redis.call('HMGET', KEYS[4], unpack(ids))
local tput = {}  -- sender id: {used, oldest, {index, grants, ...}} of the window
local function throughput_of(s)
  local id = ids[s]
  if not tput[id] then
    local used, oldest, kept = 0, nil, {}
    if counts[s] then
      local stored = cmsgpack.unpack(counts[s])
      for k = 1, #stored, 2 do
        local index = stored[k]
        if index >= first then
          used = used + stored[k + 1]
          if not oldest or index < oldest then
            oldest = index
          end
          kept[#kept + 1] = index
          kept[#kept + 1] = stored[k + 1]
        end
      end
    end
    tput[id] = {used, oldest, kept}
  end
  return tput[id]
end

-- The org's quota, read when a sender first asks it; written back once.
local used, avail, tat, omps, throttled = nil, 0, 0, 0, nil
local quota_taken = false

local codes, retries = {}, {}
local now_ms = math.floor(now * 1000)
local pair_set = {}
-- The next slot as %.17g (no precision lost), formatted once for every recipient.
local next_slot = string.format('%.17g', now + interval)
local written = {}  -- sender ids whose throughput counts changed
local allot_for = nil

for s = 1, count do
  local mps, cap = tonumber(ARGV[2 + 5 * s]), tonumber(ARGV[3 + 5 * s])
  local mask, before = ARGV[5 + 5 * s], starts[s] - 1
  local reach_key = KEYS[5 + 2 * s]
  local reached = 0
  if reach_on[s] then
    redis.call('ZREMRANGEBYSCORE', reach_key, '-inf', math.floor((now - 86400) * 1000))
    reached = redis.call('ZCARD', reach_key)
  end
  local function tier_retry()
    local oldest = redis.call('ZRANGE', reach_key, 0, 0, 'WITHSCORES')
    if not oldest[2] then
      return 300
    end
    return math.min(math.max(tonumber(oldest[2]) / 1000 + 86400 - now, 1), 300)
  end
  local state = throughput_of(s)
  local room = math.max(1, math.floor(mps + 1e-9)) - state[1]

  -- Pass one: pair pacing and the messaging limit, oldest message first. The slots move in
  -- `slots` only (written below for what is granted).
  local passing, fresh = {}, {}
  for i = starts[s], stops[s] do
    if interval > 0 then
      local field = ARGV[first_row + i - 1]
      local slot = slots[field] or 0
      -- Whatever happens to this message, the next one to this recipient comes after it.
      slots[field] = math.max(slot, now) + interval
      if slot > now + 1e-9 then
        codes[i], retries[i] = 2, slot - now
      end
    end
    if reach_on[s] and not codes[i] and string.byte(mask, i - before) == 49 then
      local to = string.sub(ARGV[first_row + i - 1], 34)
      if not fresh[to] and not redis.call('ZSCORE', reach_key, to) then
        if reached >= cap then
          codes[i], retries[i] = 3, tier_retry()
        else
          reached = reached + 1
          fresh[to] = true
        end
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
    if not used then
      local held = redis.call('HMGET', KEYS[1], 'used', 'allot', 'tat', 'mps', 'checked')
      used = tonumber(held[1])
      if used then
        avail = tonumber(held[2]) - used
      end
      tat = tonumber(held[3] or '0')
      if not used or not held[4] or now - tonumber(held[5] or '0') > 60 then
        allot_for = {s, math.max(0, got - avail)}
        break
      end
      omps = tonumber(held[4])
    end
    local burst = math.max(1, omps)
    local start = math.max(tat, now)
    local want = got
    if omps > 0 then
      want = math.min(want, math.max(0, math.floor((now - start) * omps + burst + 1e-9)))
    end
    local throttle_ms = -2
    if avail < want then
      if not throttled then
        throttled = redis.call('PTTL', KEYS[3])
      end
      throttle_ms = throttled
      if throttle_ms < 0 then
        allot_for = {s, want - avail}
        break
      end
    end
    local allowed = math.min(want, avail)
    local taken = math.min(allowed, math.max(0, room))
    if taken > 0 then
      if omps > 0 then
        tat = start + taken / omps
      end
      used, avail = used + taken, avail - taken
      quota_taken = true
    end
    if allowed < got then
      if omps > 0 then
        quota_retry = math.max(0, tat + (1 - burst) / omps - now)
      end
      if allowed == avail + taken and throttle_ms >= 0 then
        quota_retry = math.max(quota_retry, throttle_ms / 1000)
      end
    end
    got = allowed
  end
  local granted = math.min(got, math.max(0, room))

  -- Consume for what every limit granted.
  for j = 1, #passing do
    local i = passing[j]
    if j <= granted then
      codes[i], retries[i] = 0, 0
      if interval > 0 then
        pair_set[#pair_set + 1] = ARGV[first_row + i - 1]
        pair_set[#pair_set + 1] = next_slot
      end
      if reach_on[s] and string.byte(mask, i - before) == 49 then
        redis.call('ZADD', reach_key, now_ms, string.sub(ARGV[first_row + i - 1], 34))
      end
    elseif j <= got then
      codes[i] = 1
    else
      codes[i], retries[i] = 4, quota_retry
    end
  end
  if granted > 0 then
    state[1] = state[1] + granted
    if not state[2] or bucket < state[2] then
      state[2] = bucket
    end
    local kept = state[3]
    if kept[#kept - 1] == bucket then
      kept[#kept] = kept[#kept] + granted
    else
      kept[#kept + 1] = bucket
      kept[#kept + 1] = granted
    end
    written[ids[s]] = true
    if reach_on[s] then
      redis.call('PEXPIRE', reach_key, 90000000)
    end
  end
  local tput_retry = 0
  if state[2] then
    tput_retry = math.max(0, (state[2] + 12) * 0.1 - now)
  end
  for i = starts[s], stops[s] do
    if codes[i] == 1 then
      retries[i] = tput_retry
    end
  end
end

-- Write back what the decided senders consumed.
if quota_taken then
  redis.call('HSET', KEYS[1], 'used', used, 'tat', tat)
end
if #pair_set > 0 then
  chunked('HSET', KEYS[5], pair_set, 1, #pair_set)
  redis.call('PEXPIRE', KEYS[5], 2 * epoch_ms + 1000)
end
local tput_set = {}
for id in pairs(written) do
  tput_set[#tput_set + 1] = id
  tput_set[#tput_set + 1] = cmsgpack.pack(tput[id][3])
end
if #tput_set > 0 then
  redis.call('HSET', KEYS[4], unpack(tput_set))
  -- Counts are read for 1.2 s: a key no sender of the org was granted on for 2 s is dropped.
  redis.call('PEXPIRE', KEYS[4], 2000)
end

local decided = total
local reply = {1}
if allot_for then
  decided = starts[allot_for[1]] - 1
  reply = {-1, allot_for[1], allot_for[2], math.floor(tat * 1000000)}
else
  local all = true
  for i = 1, total do
    if codes[i] ~= 0 then
      all = false
      break
    end
  end
  if all then
    return total  -- all granted, the common case: an integer is the cheapest reply to parse
  end
end
for i = 1, decided do
  reply[#reply + 1] = codes[i]
  reply[#reply + 1] = math.ceil(retries[i] * 1000)
end
return reply
