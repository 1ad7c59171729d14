"""The Lua script that evaluates a :class:`~callnowd.limits.ratelimit.Plan` in Redis.

It mirrors :class:`~callnowd.limits.memory.MemoryRateLimitStore` step by step:
blocks first, then every check without writing, then either all writes or the
escalation of the denying keys. One script call is one atomic step in Redis.

All times are integer microseconds held in Lua doubles (exact below 2**53, i.e.
for the next ~285 years of Unix time). Numbers are written back with
``string.format('%.0f')``: Lua's default number-to-string conversion keeps only
14 significant digits, which would round a microsecond timestamp.

Clock: ARGV[1] is ``now`` in microseconds, or -1 to use Redis ``TIME``. Daemons
sharing a Redis pass -1, so one clock (the Redis server's) orders every request
whatever the skew between the daemons' clocks; tests pass a ``now`` so the same
contract tests drive both stores. Key expiries are garbage collection only:
every decision compares stored times with ``now``, so a passed ``now`` and Redis's
own expiry never disagree about an answer.

KEYS: for each key identity i: block hash, strikes hash, denials TAT; then one
state key per check. ARGV[1] packs every argument, each followed by a tab (one
argument instead of ~90: building a command costs txredisapi ~4 us per
argument, which dominated the daemon's CPU per check). The arguments: now, #identities, #checks, escalation on (0/1),
denial emission_us, denial tolerance_us, block_us, strike memory_us; then per
identity: escalates (0/1), kind, digest; then per check: type ('b' bucket or
'd' distinct), identity index, emission_us or limit, tolerance_us or window_us,
member, reason.

Returns {status, index, retry_us, now_us, #new blocks, then per new block:
identity index, check index, until_us, strikes}; status 0 allowed, 1 denied by
check ``index``, 2 blocked identity ``index`` (retry_us -1 when permanent).
"""

from __future__ import annotations

# A number as Redis takes it (no exponent), and an expiry in whole milliseconds
# (at least 1) from one in microseconds.
_FORMATS = """local function fmt(x) return string.format('%.0f', x) end
local function ttl_ms(us) return fmt(math.max(1, math.ceil(us / 1000))) end
"""

# ``now`` in microseconds from ARGV[1], or Redis ``TIME`` when it is negative.
_NOW = """local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""

GCRA_SCRIPT = (
    """
local ARGV = (function(packed)
  local out = {}
  for field in string.gmatch(packed, '([^\t]*)\t') do out[#out + 1] = field end
  return out
end)(ARGV[1])
"""
    + _FORMATS
    + _NOW
    + """local nid = tonumber(ARGV[2])
local nck = tonumber(ARGV[3])
local a0 = 8 + 3 * nid
local k0 = 3 * nid

local bidx, buntil = 0, 0
for i = 1, nid do
  local u = redis.call('HGET', KEYS[3 * i - 2], 'until')
  if u then
    u = tonumber(u)
    if u < 0 or u > now then
      if bidx == 0 or (u < 0 and buntil >= 0) or (buntil >= 0 and u > buntil) then
        bidx, buntil = i, u
      end
    end
  end
end
if bidx > 0 then
  local retry = -1
  if buntil >= 0 then retry = buntil - now end
  return {2, bidx, retry, now, 0}
end

local worst, wretry = 0, 0
local denied = {}
local commits = {}
for j = 1, nck do
  local o = a0 + 6 * (j - 1)
  local key = KEYS[k0 + j]
  local p1, p2 = tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])
  local retry, val = 0, 0
  if ARGV[o + 1] == 'b' then
    local b = now
    local tat = redis.call('GET', key)
    if tat then
      tat = tonumber(tat)
      if tat > now then b = tat end
    end
    local newtat = b + p1
    local allow_at = newtat - p2
    if allow_at > now then retry = allow_at - now else val = newtat end
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - p2))
    if not redis.call('ZSCORE', key, ARGV[o + 5]) then
      if redis.call('ZCARD', key) >= p1 then
        local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
        retry = tonumber(oldest[2]) + p2 - now
      end
    end
  end
  if retry > 0 then
    denied[#denied + 1] = j
    if retry > wretry then worst, wretry = j, retry end
  else
    commits[#commits + 1] = {j, val}
  end
end

if #denied == 0 then
  for _, c in ipairs(commits) do
    local j = c[1]
    local o = a0 + 6 * (j - 1)
    local key = KEYS[k0 + j]
    if ARGV[o + 1] == 'b' then
      redis.call('SET', key, fmt(c[2]), 'PX', ttl_ms(c[2] - now))
    else
      redis.call('ZADD', key, fmt(now), ARGV[o + 5])
      redis.call('PEXPIRE', key, ttl_ms(tonumber(ARGV[o + 4])))
    end
  end
  return {0, 0, 0, now, 0}
end

local out = {1, worst, wretry, now, 0}
if ARGV[4] == '1' then
  local seen = {}
  for _, j in ipairs(denied) do
    local o = a0 + 6 * (j - 1)
    local i = tonumber(ARGV[o + 2])
    local io = 8 + 3 * (i - 1)
    if not seen[i] and ARGV[io + 1] == '1' then
      seen[i] = true
      local dkey = KEYS[3 * i]
      local b = now
      local tat = redis.call('GET', dkey)
      if tat then
        tat = tonumber(tat)
        if tat > now then b = tat end
      end
      local newtat = b + tonumber(ARGV[5])
      if newtat - tonumber(ARGV[6]) <= now then
        redis.call('SET', dkey, fmt(newtat), 'PX', ttl_ms(newtat - now))
      else
        redis.call('DEL', dkey)
        local skey = KEYS[3 * i - 1]
        local strikes = 1
        local sexp = tonumber(redis.call('HGET', skey, 'expires') or '0')
        if sexp > now then
          strikes = tonumber(redis.call('HGET', skey, 'count') or '0') + 1
        end
        local memory = tonumber(ARGV[8])
        redis.call('HSET', skey, 'count', strikes, 'expires', fmt(now + memory))
        redis.call('PEXPIRE', skey, ttl_ms(memory))
        local untl = -1
        if strikes < 2 then untl = now + tonumber(ARGV[7]) end
        local bkey = KEYS[3 * i - 2]
        redis.call('HSET', bkey, 'kind', ARGV[io + 2], 'digest', ARGV[io + 3],
          'reason', ARGV[o + 6], 'since', fmt(now), 'until', fmt(untl),
          'strikes', strikes)
        if untl >= 0 then
          redis.call('PEXPIRE', bkey, ttl_ms(untl - now))
        else
          redis.call('PERSIST', bkey)
        end
        out[5] = out[5] + 1
        out[#out + 1] = i
        out[#out + 1] = j
        out[#out + 1] = untl
        out[#out + 1] = strikes
      end
    end
    seen[i] = true
  end
end
return out
"""
)

# Records blocks made by another store (RateLimitStore.adopt_blocks), in the
# block hashes GCRA_SCRIPT writes and reads. KEYS: one block hash per block.
# ARGV: now (microseconds, or -1 for Redis TIME), then per block: kind, digest,
# reason, since_us, until_us (-1: permanent), strikes. A block that has ended, or
# whose key is blocked already, is skipped. Returns how many were recorded.
ADOPT_BLOCKS_SCRIPT = (
    _FORMATS
    + _NOW
    + """local added = 0
for i = 1, #KEYS do
  local o = 1 + (i - 1) * 6
  local untl = tonumber(ARGV[o + 5])
  if untl < 0 or untl > now then
    local u = redis.call('HGET', KEYS[i], 'until')
    local held = u and (tonumber(u) < 0 or tonumber(u) > now)
    if not held then
      redis.call('HSET', KEYS[i], 'kind', ARGV[o + 1], 'digest', ARGV[o + 2],
        'reason', ARGV[o + 3], 'since', ARGV[o + 4], 'until', ARGV[o + 5],
        'strikes', ARGV[o + 6])
      if untl >= 0 then
        redis.call('PEXPIRE', KEYS[i], ttl_ms(untl - now))
      else
        redis.call('PERSIST', KEYS[i])
      end
      added = added + 1
    end
  end
end
return added
"""
)

# Gives back one request's emission to bucket states (RateLimitStore.refund). KEYS:
# the bucket state keys. ARGV: now (microseconds, or -1 for Redis TIME), then per
# key its emission in microseconds. A TAT that falls to ``now`` or below is deleted
# (a full bucket, as for a key never seen); otherwise it is written back with its
# expiry. Returns how many states were changed.
REFUND_SCRIPT = (
    _FORMATS
    + _NOW
    + """local changed = 0
for i = 1, #KEYS do
  local tat = redis.call('GET', KEYS[i])
  if tat then
    local back = tonumber(tat) - tonumber(ARGV[i + 1])
    if back > now then
      redis.call('SET', KEYS[i], fmt(back), 'PX', ttl_ms(back - now))
    else
      redis.call('DEL', KEYS[i])
    end
    changed = changed + 1
  end
end
return changed
"""
)
