-- breakerbox: every change of a fleet-shared circuit breaker, as one atomic
-- compare-and-swap on the namespace's state hash.
--
-- KEYS[1]  the state hash, "breakerbox:{<namespace>}:state"
-- ARGV[1]  op: "sync" | "acquire" | "record" | "force" | "reconcile" | "flush"
-- ARGV[2]  pub/sub channel to announce changes on ("" = none)
-- ARGV[3]  generation modulus of the callers' tickets
-- ARGV[4..7]   seed, used only when the hash is missing (first breaker of the
--              namespace, or a Redis that restarted empty): state, generation,
--              failures, milliseconds since it opened
-- ARGV[8..12]  the caller's limits: fail_max, success_threshold,
--              half_open_max_calls, reset_timeout_ms, probe_lease_ms
-- ARGV[13..15] op arguments: record: ticket kind (1 closed, 2 probe), ticket
--              generation, outcome (0 success, 1 failure, 2 ignored);
--              force: target state (the breaker always sends three, padded)
-- ARGV[16]     TESTS ONLY (the breaker sends ""): a time in ms that stands
--              in for the server's TIME (tests/redis_differential.rs drives
--              the script with the same clock as an in-memory breaker)
-- ARGV[17]     record: the probe ticket's slot (the acquire reply's last
--              field; the breaker always sends it, 0 for other ops)
-- ARGV[18..27] a rate window's record or flush (absent: the consecutive rule):
--              kind (1 count, 2 time), buckets, span (calls per bucket, or the
--              bucket width in ms), minimum calls, failure-rate threshold and
--              slow-call-rate threshold (basis points; slow 0 = not counted),
--              then the counts the caller has not sent before: the generation
--              they were counted in, calls, failures, slow calls (a breaker
--              with a backoff and no window sends kind 0 and nine zeros)
-- ARGV[28..32] an exponential open backoff (absent: every open period lasts
--              the caller's reset timeout): kind (1 exponential), multiplier,
--              cap in ms, jitter (0 none, 1 full, 2 equal), and a random
--              integer below 2^32 for the jitter (the caller draws it, so the
--              script stays deterministic given its arguments)
-- ARGV[33..36] the failure-rate half-open rule (absent: probes decide by
--              successes): kind (1 failure rate), failure-rate threshold and
--              slow-call-rate threshold (basis points; slow 0 = not counted),
--              and, for a probe's record, whether it was slow (1) or not (0)
--              (a caller with the rule pads the window's and the backoff's
--              arguments with kind 0 and zeros when it has neither)
--
-- Fields: v version, s state (0 closed, 1 open, 2 half-open), g generation,
-- f failures, o opened-at (server ms), i probes in flight, k probe successes,
-- p latest probe admission (server ms), b probe slots taken (a bitmap), n next
-- probe slot, a open periods since the fleet last closed (0 or missing: no
-- backoff state), d the latest open period in ms and e the generation it was
-- chosen for (d holds only while the fleet is open in that generation: an
-- older script's open, which writes neither, lasts the reset timeout). Times
-- come from the server's TIME, so the hosts' clocks never matter.
--
-- Under the failure-rate rule (ARGV[33] = 1) the probe tally rides beside
-- them, as in the in-memory word: r probes recorded (success or failure),
-- x of them failures, y of them slow. A recorded probe's permit stays spent,
-- so the permits spent are i + r, at most half_open_max_calls; an ignored
-- probe leaves r alone, giving its permit back. The record that brings r to
-- half_open_max_calls decides: re-open if x / r (or y / r, slow calls
-- counted) is at or above its threshold, else close. A reclaim of expired
-- leases, and the last probe in flight recorded, keep the tally. Every
-- transition clears it. A caller without the rule never writes r, x or y.
--
-- Open period a lasts min(cap, reset_timeout * multiplier^(a-1)), grown step
-- by step as src/machine/backoff.rs grows it, then jittered: the process
-- whose run opens the fleet sends the backoff, and its period holds for the
-- whole fleet until the next transition. A close starts the count over.
--
-- The fleet's rate window lives in the same hash: wb (count window: the
-- current bucket's epoch) and a ring w0..w15, slot epoch % 16, each
-- "epoch generation calls failures slow". A time window's epoch is the
-- server's TIME divided by the bucket width. A slot counts only for the
-- generation it was written in, so every transition empties the window.
-- Window writes change no state: no version, no announcement.
--
-- Reply: { code, v, s, g, f, ms since opened, i, k, ms since last probe
-- admission, b, n, open period (ms; -1 when not open or no backoff chose
-- it), transition from (-1 none), transition to (-1 none), the admitted
-- probe's slot (0 otherwise) }, then for a caller with the failure-rate
-- rule the probe tally: r, x, y. An announcement is the view's eleven
-- fields (v to the open period), space-separated, then r x y if the run's
-- caller has the rule.

if redis.replicate_commands then
  pcall(redis.replicate_commands)
end

local CLOSED, OPEN, HALF_OPEN = 0, 1, 2
local ADMIT_CLOSED, ADMIT_PROBE, REJECT, COUNTED, TRANSITIONED, STALE, NOOP = 1, 2, 3, 4, 5, 6, 7
local SUCCESS, FAILURE = 0, 1
-- Probe slots, as the in-memory word keeps them (src/machine/state.rs): each
-- of the first 16 probes of a half-open episode holds its own slot (bit of
-- b), each slot used once; n is the next. After 16 the probes are only
-- counted (n = SLOTS_COUNTED, b = 0) until the episode ends.
local PROBE_SLOTS, SLOTS_COUNTED = 16, 31

local key = KEYS[1]
local op = ARGV[1]
local channel = ARGV[2]
local modulus = tonumber(ARGV[3])
local fail_max = tonumber(ARGV[8])
local success_threshold = tonumber(ARGV[9])
local max_probes = tonumber(ARGV[10])
local reset_timeout = tonumber(ARGV[11])
local lease = tonumber(ARGV[12])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
if ARGV[16] and ARGV[16] ~= '' then
  -- Tests only (see ARGV[16] above): the production path never gets here.
  now = tonumber(ARGV[16])
  now_us = now * 1000
end

local function num(x)
  return tonumber(x) or 0
end

local h = redis.call('HMGET', key, 'v', 's', 'g', 'f', 'o', 'i', 'k', 'p', 'b', 'n', 'a', 'd', 'e', 'r', 'x', 'y')
local st
local dirty = false
local s0 = tonumber(h[2])
if not tonumber(h[1]) or (s0 ~= CLOSED and s0 ~= OPEN and s0 ~= HALF_OPEN) then
  -- Missing (or unreadable): seed from the caller's mirror, so a Redis that
  -- lost its data does not close an open fleet.
  local seed_state = tonumber(ARGV[4])
  st = { v = 0, s = CLOSED, g = num(ARGV[5]), f = 0, o = 0, i = 0, k = 0, p = 0, b = 0, n = 0, a = 0, d = 0, e = 0,
         r = 0, x = 0, y = 0 }
  if seed_state == OPEN then
    st.s = OPEN
    st.o = math.max(now - num(ARGV[7]), 0)
  elseif seed_state == HALF_OPEN then
    -- Probes admitted before the loss are unknown here: start a fresh
    -- half-open episode with every slot free (their tickets go stale).
    st.s = HALF_OPEN
    st.g = st.g + 1
  else
    st.f = num(ARGV[6])
  end
  dirty = true
else
  st = { v = num(h[1]), s = s0, g = num(h[3]), f = num(h[4]), o = num(h[5]),
         i = num(h[6]), k = num(h[7]), p = num(h[8]), b = num(h[9]), n = num(h[10]),
         a = num(h[11]), d = num(h[12]), e = num(h[13]), r = num(h[14]), x = num(h[15]), y = num(h[16]) }
end
if st.s ~= HALF_OPEN then
  st.r, st.x, st.y = 0, 0, 0
end
-- Whether the hash keeps a backoff's fields (written back if so).
local had_backoff = h[11] and true or false
-- Whether the hash keeps a probe tally's fields (written back if so).
local had_tally = h[14] and true or false

-- The half-open rule: the failure-rate rule's thresholds, if the caller has it.
local rkind = tonumber(ARGV[33]) or 0
local rfail, rslow, rslow_call = num(ARGV[34]), num(ARGV[35]), num(ARGV[36])

-- How many slots a bitmap holds.
local function taken(bitmap)
  local c = 0
  for _ = 1, PROBE_SLOTS do
    c = c + bitmap % 2
    bitmap = math.floor(bitmap / 2)
  end
  return c
end

if st.s ~= HALF_OPEN or st.i == 0 then
  st.b, st.n = 0, 0
elseif st.n ~= SLOTS_COUNTED and (st.n < 0 or st.n > PROBE_SLOTS or st.b < 0 or st.b >= 2 ^ PROBE_SLOTS
    or taken(st.b) ~= st.i) then
  -- Slots that do not match the count (a hash an older script wrote, with
  -- no slots): count the probes until the episode ends.
  st.b, st.n = 0, SLOTS_COUNTED
end

-- Whether the probe that was given `slot` is still in flight.
local function holds_probe(slot)
  if st.n == SLOTS_COUNTED then
    return st.i > 0
  end
  return slot ~= nil and slot >= 0 and slot < PROBE_SLOTS and math.floor(slot) == slot
    and math.floor(st.b / 2 ^ slot) % 2 == 1
end

local code = NOOP
local from, to = -1, -1
local admitted_slot = 0

-- The rate window, read only for a windowed record or flush.
local wkind = tonumber(ARGV[18]) or 0
local W = nil
local wbuckets, wspan, wmin, wfail, wslow
if wkind > 0 and (op == 'record' or op == 'flush') then
  wbuckets, wspan, wmin = num(ARGV[19]), math.max(num(ARGV[20]), 1), num(ARGV[21])
  wfail, wslow = num(ARGV[22]), num(ARGV[23])
  local names = { 'wb' }
  for j = 0, 15 do
    names[#names + 1] = 'w' .. j
  end
  local raw = redis.call('HMGET', key, unpack(names))
  W = { base = num(raw[1]), slots = {}, dirty = {}, based = false }
  for j = 0, 15 do
    local e, g, c, f, sl = string.match(raw[j + 2] or '', '^(%d+) (%d+) (%d+) (%d+) (%d+)$')
    if e then
      W.slots[j] = { e = tonumber(e), g = tonumber(g), c = tonumber(c), f = tonumber(f), s = tonumber(sl) }
    end
  end
end

local function w_epoch()
  if wkind == 2 then
    return math.floor(now / wspan)
  end
  return W.base
end

-- The bucket of epoch e in this generation, restarted if it held another.
local function w_slot(e)
  local j = e % 16
  local sl = W.slots[j]
  if not sl or sl.e ~= e or sl.g ~= st.g then
    sl = { e = e, g = st.g, c = 0, f = 0, s = 0 }
    W.slots[j] = sl
  end
  W.dirty[j] = true
  return sl
end

-- Adds counts to the current bucket. A count window fills each bucket up to
-- its span and rolls on to the next, keeping at most the window's calls of
-- one delta (at its rates).
local function w_add(c, f, s)
  if wkind == 2 then
    local sl = w_slot(w_epoch())
    sl.c, sl.f, sl.s = sl.c + c, sl.f + f, sl.s + s
    return
  end
  local cap = wbuckets * wspan
  if c > cap then
    f = math.floor(f * cap / c + 0.5)
    s = math.floor(s * cap / c + 0.5)
    c = cap
  end
  while c > 0 do
    local sl = w_slot(W.base)
    local room = wspan - sl.c
    if room <= 0 then
      W.base = W.base + 1
      W.based = true
    else
      local take = math.min(room, c)
      local tf = math.floor(f * take / c + 0.5)
      local ts = math.floor(s * take / c + 0.5)
      sl.c, sl.f, sl.s = sl.c + take, sl.f + tf, sl.s + ts
      c, f, s = c - take, f - tf, s - ts
    end
  end
end

-- Whether the summed window meets the rule.
local function w_trips()
  local e = w_epoch()
  local c, f, s = 0, 0, 0
  for j = 0, 15 do
    local sl = W.slots[j]
    if sl and sl.g == st.g and e - sl.e >= 0 and e - sl.e < wbuckets then
      c, f, s = c + sl.c, f + sl.f, s + sl.s
    end
  end
  return c >= wmin and c > 0 and (f * 10000 >= wfail * c or (wslow > 0 and s * 10000 >= wslow * c))
end

if W and st.s == CLOSED and (st.g % modulus) == num(ARGV[24]) then
  -- Counts from another episode (before a transition) are dropped.
  w_add(num(ARGV[25]), num(ARGV[26]), num(ARGV[27]))
end

-- The open backoff, if the caller has one.
local bkind = tonumber(ARGV[28]) or 0
local bmultiplier, bcap, bjitter, brandom = tonumber(ARGV[29]) or 1, num(ARGV[30]), num(ARGV[31]), num(ARGV[32])

-- base * multiplier^(attempt - 1), at most cap: multiplied step by step, as
-- grown_ms in src/machine/backoff.rs does, so both agree to the millisecond.
local function grown(base, multiplier, cap, attempt)
  local g = base
  if multiplier > 1 and base > 0 then
    for _ = 2, math.min(attempt, 65536) do
      if g >= cap then
        break
      end
      g = g * multiplier
    end
  end
  if g >= cap then
    return cap
  end
  return math.floor(g)
end

-- The length of open period `attempt`, jittered as OpenBackoff::next_ms does.
local function open_period(attempt)
  local d = grown(reset_timeout, bmultiplier, math.max(bcap, reset_timeout), attempt)
  if bjitter == 1 then
    d = brandom % (d + 1)
  elseif bjitter == 2 then
    local half = math.floor(d / 2)
    d = half + brandom % (d - half + 1)
  end
  return d
end

-- A change of state: a new episode, every count cleared.
local function go(target)
  if from < 0 then
    from = st.s
  end
  to = target
  st.s = target
  st.g = st.g + 1
  st.f, st.i, st.k = 0, 0, 0
  st.b, st.n = 0, 0
  st.r, st.x, st.y = 0, 0, 0
  if target == OPEN then
    st.o = now
    if bkind == 1 then
      st.a = st.a + 1
      st.d, st.e = open_period(st.a), st.g
    else
      -- Opened by a caller without a backoff: its reset timeout rules.
      st.a, st.d, st.e = 0, 0, 0
    end
  elseif target == CLOSED then
    st.a, st.d, st.e = 0, 0, 0
  end
  dirty = true
end

-- Whether a backoff chose the current open period (d).
local function backed_off()
  return st.s == OPEN and st.a > 0 and st.e == st.g
end

-- How long the current open period lasts.
local function open_for()
  if backed_off() then
    return st.d
  end
  return reset_timeout
end

-- Frees the probe slot `slot`; when none stays in flight the episode ends
-- (and the next starts with every slot free).
local function release_probe(slot, successes)
  st.i = math.max(st.i - 1, 0)
  st.k = successes
  if st.i == 0 then
    st.g = st.g + 1
    st.b, st.n = 0, 0
  elseif st.n ~= SLOTS_COUNTED then
    st.b = st.b - 2 ^ slot
  end
  dirty = true
end

-- Whether the recorded probes decide (failure-rate rule): true re-opens,
-- false closes, nil waits for more.
local function probes_decide()
  if st.r < max_probes then
    return nil
  end
  return st.x * 10000 >= rfail * st.r or (rslow > 0 and st.y * 10000 >= rslow * st.r)
end

-- Moves to the state the recorded probes decide, if they do.
local function go_as_probes_decide()
  local reopen = probes_decide()
  if reopen == true then
    go(OPEN)
  elseif reopen == false then
    go(CLOSED)
  end
  return reopen ~= nil
end

local function admit_probe()
  if st.i + st.r >= max_probes then
    -- Every probe in flight outlived its lease: reclaim them all (under the
    -- failure-rate rule the permits recorded probes spent stay spent).
    st.g = st.g + 1
    st.i, st.b, st.n = 0, 0, 0
  end
  st.i = st.i + 1
  if st.n < PROBE_SLOTS then
    admitted_slot = st.n
    st.b = st.b + 2 ^ st.n
    st.n = st.n + 1
  else
    -- Every slot was used once this episode: count from here on.
    st.b, st.n = 0, SLOTS_COUNTED
  end
  st.p = math.max(st.p, now)
  dirty = true
  code = ADMIT_PROBE
end

if op == 'acquire' then
  if st.s == CLOSED then
    code = ADMIT_CLOSED
  elseif st.s == OPEN then
    if now >= st.o + open_for() then
      go(HALF_OPEN)
      st.p = now
      admit_probe()
    else
      code = REJECT
    end
  elseif st.i + st.r < max_probes or now >= st.p + lease then
    admit_probe()
  else
    code = REJECT
  end
elseif op == 'record' then
  local kind, ticket_gen, outcome = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
  local slot = tonumber(ARGV[17])
  local stale = (st.g % modulus) ~= ticket_gen
  if not stale then
    if kind == 2 then
      -- A probe recorded twice finds its slot free: stale.
      stale = st.s ~= HALF_OPEN or not holds_probe(slot)
    else
      stale = st.s ~= CLOSED
    end
  end
  if stale then
    code = STALE
  else
    if st.s == CLOSED and W then
      -- A windowed failure or slow call: the fleet's summed rate decides.
      if w_trips() then
        go(OPEN)
      end
    elseif st.s == CLOSED then
      if outcome == SUCCESS then
        if st.f > 0 then
          st.f = 0
          dirty = true
        end
      elseif outcome == FAILURE then
        if st.f + 1 >= fail_max then
          go(OPEN)
        else
          st.f = st.f + 1
          dirty = true
        end
      end
    elseif rkind == 1 and (outcome == SUCCESS or outcome == FAILURE) then
      -- The probe's permit stays spent; the last permitted one decides.
      st.r = st.r + 1
      if outcome == FAILURE then
        st.x = st.x + 1
      end
      if rslow_call == 1 then
        st.y = st.y + 1
      end
      if not go_as_probes_decide() then
        release_probe(slot, st.k)
      end
    elseif outcome == FAILURE then
      go(OPEN)
    elseif outcome == SUCCESS then
      if st.k + 1 >= success_threshold then
        go(CLOSED)
      else
        release_probe(slot, st.k + 1)
      end
    else
      release_probe(slot, st.k)
    end
    code = (to >= 0) and TRANSITIONED or COUNTED
  end
elseif op == 'force' then
  local target = tonumber(ARGV[13])
  if target == CLOSED and st.s == CLOSED then
    if st.f > 0 then
      st.f = 0
      dirty = true
    end
  elseif target ~= st.s then
    go(target)
  end
elseif op == 'reconcile' then
  if st.s == CLOSED and st.f >= fail_max then
    go(OPEN)
  elseif st.s == HALF_OPEN and rkind == 1 then
    go_as_probes_decide()
  elseif st.s == HALF_OPEN and st.k >= success_threshold then
    go(CLOSED)
  end
elseif op ~= 'sync' and op ~= 'flush' then
  return redis.error_reply('ERR breakerbox: unknown op ' .. tostring(op))
end

local opened_ms = 0
if st.s == OPEN then
  opened_ms = math.max(now - st.o, 0)
end
local probe_ms = 0
if st.s == HALF_OPEN then
  probe_ms = math.max(now - st.p, 0)
end
local period = -1
if backed_off() then
  period = st.d
end

if W then
  local fields = {}
  if W.based then
    fields[#fields + 1] = 'wb'
    fields[#fields + 1] = string.format('%.0f', W.base)
  end
  for j, _ in pairs(W.dirty) do
    local sl = W.slots[j]
    fields[#fields + 1] = 'w' .. j
    fields[#fields + 1] = string.format('%.0f %.0f %.0f %.0f %.0f', sl.e, sl.g, sl.c, sl.f, sl.s)
  end
  if #fields > 0 then
    redis.call('HSET', key, unpack(fields))
  end
end

if dirty then
  -- Versions only grow, across restarts too: at least the server's clock.
  st.v = math.max(st.v + 1, now_us)
  redis.call('HSET', key,
    'v', string.format('%.0f', st.v), 's', st.s, 'g', string.format('%.0f', st.g),
    'f', string.format('%.0f', st.f), 'o', string.format('%.0f', st.o),
    'i', st.i, 'k', st.k, 'p', string.format('%.0f', st.p),
    'b', string.format('%.0f', st.b), 'n', st.n)
  if bkind > 0 or had_backoff then
    redis.call('HSET', key, 'a', string.format('%.0f', st.a), 'd', string.format('%.0f', st.d),
      'e', string.format('%.0f', st.e))
  end
  if rkind > 0 or had_tally then
    redis.call('HSET', key, 'r', st.r, 'x', st.x, 'y', st.y)
  end
  if channel ~= '' then
    local announced = string.format('%.0f %d %.0f %.0f %.0f %d %d %.0f %.0f %d %.0f',
      st.v, st.s, st.g, st.f, opened_ms, st.i, st.k, probe_ms, st.b, st.n, period)
    if rkind == 1 then
      announced = announced .. string.format(' %d %d %d', st.r, st.x, st.y)
    end
    redis.call('PUBLISH', channel, announced)
  end
end

local reply = { code, st.v, st.s, st.g, st.f, opened_ms, st.i, st.k, probe_ms, st.b, st.n, period, from, to,
  admitted_slot }
if rkind == 1 then
  reply[#reply + 1] = st.r
  reply[#reply + 1] = st.x
  reply[#reply + 1] = st.y
end
return reply
