"""The Lua scripts behind :mod:`bounded.economics.redis_accountant`.

Each runs atomically inside Redis, so every replica sees one consistent set of budgets,
reservations and token buckets. Money is in integers of 1e-10 USD (exact below 2^53).
"""

from __future__ import annotations

from string import Template

# Budget windows outlive their reset by a day so that late settlements still land in them.
WINDOW_GRACE_S = 86_400
# An idle bucket is full again after a minute; keep it a little longer, then let it go.
BUCKET_TTL_MS = 120_000
# Expired holds released per reserve call: bounds the work one request can inherit.
REAP_BATCH = 32

# KEYS: holds zset, this hold's hash, budget windows..., buckets...
# ARGV: n budgets, cost e10, hold ttl s, hold id, hold key prefix,
#       then (amount e10, hard 1|0) per budget, then (capacity, amount) per bucket.
# Returns {"seed", i...} | {"budget", i, spent, reserved} | {"rate", j, wait}
#       | {"ok", soft flags, bucket levels...}.
RESERVE = Template("""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, $reap)
for _, id in ipairs(expired) do
  local hold = ARGV[5] .. id
  local fields = redis.call('HGETALL', hold)
  for i = 1, #fields, 2 do
    local key = string.sub(fields[i], 3)
    if string.sub(fields[i], 1, 2) == 'b|' and redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBY', key, 'reserved', -tonumber(fields[i + 1]))
    end
  end
  redis.call('DEL', hold)
  redis.call('ZREM', KEYS[1], id)
end
local nb = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local missing = {}
for i = 1, nb do
  if redis.call('HEXISTS', KEYS[2 + i], 'spent') == 0 then table.insert(missing, i) end
end
if #missing > 0 then return {'seed', unpack(missing)} end
local flags = ''
for i = 1, nb do
  local v = redis.call('HMGET', KEYS[2 + i], 'spent', 'reserved')
  local spent = tonumber(v[1])
  local reserved = tonumber(v[2] or '0')
  local amount = tonumber(ARGV[4 + 2 * i])
  if ARGV[5 + 2 * i] == '1' then
    if spent >= amount or spent + reserved + cost > amount then
      return {'budget', i, v[1], v[2] or '0'}
    end
    flags = flags .. '0'
  elseif spent + cost > amount then
    flags = flags .. '1'
  else
    flags = flags .. '0'
  end
end
local levels = {}
local base = 5 + 2 * nb
for j = 1, #KEYS - 2 - nb do
  local key = KEYS[2 + nb + j]
  local cap = tonumber(ARGV[base + 2 * j - 1])
  local take = tonumber(ARGV[base + 2 * j])
  local b = redis.call('HMGET', key, 'level', 'ts')
  local level = cap
  if b[1] then
    level = math.min(cap, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * cap / 60)
  end
  if level < take then return {'rate', j, tostring((take - level) * 60 / cap)} end
  levels[j] = level - take
end
for i = 1, nb do
  redis.call('HINCRBY', KEYS[2 + i], 'reserved', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'b|' .. KEYS[2 + i], ARGV[2])
end
local reply = {'ok', flags}
for j = 1, #levels do
  local key = KEYS[2 + nb + j]
  redis.call('HSET', key, 'level', tostring(levels[j]), 'ts', tostring(now))
  redis.call('PEXPIRE', key, $bucket_ttl)
  table.insert(reply, tostring(levels[j]))
end
if nb > 0 then
  -- The hash outlives its expiry in the zset, so the reaper always finds what to release.
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]) + $grace)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
end
return reply
""").substitute(reap=REAP_BATCH, bucket_ttl=BUCKET_TTL_MS, grace=WINDOW_GRACE_S)

# KEYS: holds zset, hold hash, budget windows..., token buckets...
# ARGV: n budgets, actual cost e10, hold id, then (capacity, reserved - actual) per bucket.
SETTLE = """
local nb = tonumber(ARGV[1])
local held = redis.call('HGETALL', KEYS[2])
for i = 1, #held, 2 do
  local key = held[i]
  if string.sub(key, 1, 2) == 'b|' and redis.call('EXISTS', string.sub(key, 3)) == 1 then
    redis.call('HINCRBY', string.sub(key, 3), 'reserved', -tonumber(held[i + 1]))
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[3])
for i = 1, nb do
  -- A window that is gone will be seeded from the ledger, which will hold this call.
  if redis.call('HEXISTS', KEYS[2 + i], 'spent') == 1 then
    redis.call('HINCRBY', KEYS[2 + i], 'spent', ARGV[2])
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for j = 1, #KEYS - 2 - nb do
  local key = KEYS[2 + nb + j]
  local b = redis.call('HMGET', key, 'level', 'ts')
  if b[1] then
    local cap = tonumber(ARGV[2 + 2 * j])
    local level = math.min(cap, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * cap / 60)
    level = math.min(cap, level + tonumber(ARGV[3 + 2 * j]))
    redis.call('HSET', key, 'level', tostring(level), 'ts', tostring(now))
  end
end
return 1
"""

# KEYS: budget window. ARGV: spent e10, ttl s (0: never expires). Returns {1} if it seeded.
SEED = """
if redis.call('HSETNX', KEYS[1], 'spent', ARGV[1]) == 1 then
  if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
  return {1}
end
return {0}
"""
