"""The Lua script of one check in Redis: :func:`shared.limits.algorithm.decide`, atomically.

Redis runs a script without interleaving any other command (EVAL, "Atomicity of scripts"),
so every rule of a check reads, decides and writes as one step even with many replicas
checking the same tenant at once: nothing is consumed unless every rule allows.

KEYS: one per rule, in the order of the rules.
ARGV: now_ms, cost, then four per rule: kind ("r" rate, "q" quota), a, b, ttl_ms (the
meaning of ``a`` and ``b`` per kind is :class:`shared.limits.algorithm.Step`'s).
Returns ``{1, 0, 0}`` when allowed, else ``{0, i, wait_ms}`` with the refusing rule's
1-based index and the milliseconds until it would allow (rounded up).

Times come in from the caller's clock (not Redis ``TIME``) so tests run on an injected clock;
replicas' clocks must agree to within what a rate can tolerate (NTP: milliseconds).
"""

from __future__ import annotations

CHECK = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local refused, worst = 0, -1
local values = {}
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 4
  local kind = ARGV[base + 1]
  local a = tonumber(ARGV[base + 2])
  local b = tonumber(ARGV[base + 3])
  local value = tonumber(redis.call('GET', KEYS[i]))
  local new, wait, over
  if kind == 'r' then
    local tat = now
    if value ~= nil and value > now then tat = value end
    new = tat + a * cost
    wait = new - b - now
    over = wait > 0
  else
    new = (value or 0) + cost
    wait = b
    over = new > a
  end
  if over and wait > worst then
    refused, worst = i, wait
  end
  values[i] = new
end
if refused > 0 then
  return {0, refused, math.ceil(worst)}
end
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 4
  if ARGV[base + 1] == 'r' then
    -- The TAT, kept to the microsecond; the key lives until the TAT passes.
    local ttl = math.max(1, math.ceil(values[i] - now))
    redis.call('SET', KEYS[i], string.format('%.3f', values[i]), 'PX', ttl)
  else
    redis.call('SET', KEYS[i], values[i], 'PX', tonumber(ARGV[base + 4]))
  end
end
return {1, 0, 0}
"""
