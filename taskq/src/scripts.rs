//! Every Lua script taskq runs on Redis: each multi-key step of the broker, result storage, and a chord's count. Each runs atomically, so a
//! message is always in exactly one place: a queue list, `unacked`, the ETA schedule or the
//! dead-letter list.

use redis::Script;

/// Moves up to N messages from the queue lists into kombu's `unacked` hash and
/// `unacked_index` zset, in one step. Messages that cannot be tracked (no string
/// `properties.delivery_tag`) and messages over the size limit, which must not reach a
/// worker's memory, go to the dead-letter list instead.
///
/// The delivery tag, exchange and routing key are read from the envelope's text with a
/// pattern, not by decoding it: decoding every envelope as JSON cost several times more Redis
/// time than the fetch's own commands. In kombu's envelope `properties` comes last, and a
/// quote inside a JSON string is always escaped, so the last `"delivery_tag": "..."` is the
/// property. A tag the pattern cannot read (escapes in it, another layout) falls back to
/// decoding. Whether the rest is valid is the worker's to judge: it dead-letters what it
/// cannot decode.
///
/// Each message taken also gets a taskq lease in `taskq.leases` (see [`RENEW`]).
///
/// A delivery tag is the message's key in `unacked`, so two copies of one envelope (pushed
/// twice, restored twice) would share one entry and a crash would lose all copies but one.
/// A copy whose tag is already held, or taken earlier in the same call, is held under
/// `<tag>+<n>` instead, with its envelope's tag rewritten to match (the rule of
/// `protocol::edit::copy_tag` and `with_delivery_tag`). Finding them costs one `HMGET` per
/// call.
///
/// A refused message's caller must learn why (the worker stores a FAILURE under its task id,
/// in the result store, which may be another Redis), so the reply names each refusal with the
/// task id when it can be read. The id is found like the tag, by a plain find, but the first
/// `"id": "..."` rather than the last: in kombu's envelope the `body` comes first but is a
/// string (base64, or JSON with every quote escaped, so nothing in it matches), and `id` is
/// the third field of `headers`, before any user header. Only refused messages are searched,
/// and the reply for a message taken is unchanged, so the common path costs the same. The
/// same search in Rust is `protocol::edit::task_id_by_search`.
///
/// The first messages taken, as many as the worker has idle execution slots, also go into the
/// started set: they start at once, and marking them here spares each start a round trip
/// (see `worker::start_marks`).
///
/// * `KEYS[1]` unacked hash, `KEYS[2]` unacked_index zset, `KEYS[3]` dead-letter list,
///   `KEYS[4]` leases zset, `KEYS[5]` started set, `KEYS[6..]` queue lists in fetch order.
/// * `ARGV[1]` max messages, `ARGV[2]` max message size in bytes, `ARGV[3]` how many of the
///   messages taken to mark started; `ARGV[4..]` the queue name of each list in `KEYS[6..]`.
/// * Returns `{now, …}`: the server time (seconds, as a string), then per message taken
///   `i, tag, raw`: the 1-based index of its list in `KEYS[6..]`, its tag and text; and per
///   message refused `-i, code, id, reason`: the index negated, why in a word (`too_large`,
///   `not_json` or `no_tag`; see `broker::refusal_kind`), the task id (`""` when not found)
///   and the reason also written to the dead-letter list.
pub(crate) const FETCH: &str = r#"
local limit = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])
local to_mark = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = string.format('%d.%06d', t[1], t[2])
local out = {now}
local taken = 0

-- The needles for a field, in the spellings tried: Python's `": "` first, then compact JSON.
local needles = {}
for _, field in ipairs({'delivery_tag', 'exchange', 'routing_key', 'id'}) do
  needles[field] = {'"' .. field .. '": "', '"' .. field .. '":"'}
end

-- Where the last `needle` starting at or after `from` is followed by a plain string: that
-- string's text, or false if it holds an escape; nil if there is no such needle.
local function last_value_from(raw, needle, from)
  local value
  while true do
    local _, open_end = string.find(raw, needle, from, true)
    if not open_end then break end
    local close = string.find(raw, '"', open_end + 1, true)
    if not close then break end
    value = string.sub(raw, open_end + 1, close - 1)
    from = close + 1
  end
  if value and string.find(value, '\\', 1, true) then return false end
  return value
end

-- The last plain string value of `"field": "..."` (or `"field":"..."`) in `raw`, or nil if
-- there is none or it holds an escape. Plain finds: a pattern with `%s*` cost 30 times more.
-- kombu writes `properties`, where these fields are, last, so each search starts in the last
-- 256 bytes and goes back to the start only when it finds nothing there: a last match at or
-- after a position is the last match overall. Searching whole envelopes took a fifth of the
-- script's instructions.
local function last_string(raw, field)
  local tail = math.max(1, #raw - 255)
  for _, needle in ipairs(needles[field]) do
    local value = last_value_from(raw, needle, tail)
    if value == nil and tail > 1 then value = last_value_from(raw, needle, 1) end
    if value ~= nil then return value or nil end
  end
  return nil
end

-- The first plain string value of `"field": "..."` (or `"field":"..."`) in `raw`, or nil
-- if there is none, it is empty or it holds an escape. For refused messages only.
local function first_string(raw, field)
  for _, needle in ipairs(needles[field]) do
    local _, open_end = string.find(raw, needle, 1, true)
    if open_end then
      local close = string.find(raw, '"', open_end + 1, true)
      local value = close and string.sub(raw, open_end + 1, close - 1) or ''
      if value == '' or string.find(value, '\\', 1, true) then return nil end
      return value
    end
  end
  return nil
end

-- Tag, exchange and routing key of an envelope, or nil, a refusal code and why it cannot be
-- tracked.
local function describe(raw, queue)
  local tag = last_string(raw, 'delivery_tag')
  if tag then
    return tag, last_string(raw, 'exchange') or '', last_string(raw, 'routing_key') or queue
  end
  local ok, env = pcall(cjson.decode, raw)
  local props = ok and type(env) == 'table' and env.properties
  tag = type(props) == 'table' and props.delivery_tag
  if type(tag) ~= 'string' then
    if ok then return nil, 'no_tag', 'message has no properties.delivery_tag' end
    return nil, 'not_json', 'message is not JSON: ' .. tostring(env)
  end
  local info = type(props.delivery_info) == 'table' and props.delivery_info or {}
  local exchange = type(info.exchange) == 'string' and info.exchange or ''
  local routing_key = type(info.routing_key) == 'string' and info.routing_key or queue
  return tag, exchange, routing_key
end

-- Redis commands with many arguments, in chunks: Lua's stack holds a few thousand values.
local function call_chunked(command, key, args)
  for first = 1, #args, 1000 do
    redis.call(command, key, unpack(args, first, math.min(first + 999, #args)))
  end
end

-- The JSON string of a value; exchanges and routing keys repeat, so each is encoded once.
local encoded = {}
local function json_string(value)
  local json = encoded[value]
  if not json then
    json = cjson.encode(value)
    encoded[value] = json
  end
  return json
end

-- What the held messages need, written with one command each below: an entry per message
-- costs Redis far more through single commands from Lua than as arguments of one. For the
-- k-th message taken, `held[2k - 1]` and `scores[2k]` are its tag, `held[2k]` its unacked
-- entry and `out[places[k]]` its tag in the reply, followed by its text.
local held, scores, places = {}, {}, {}
for i = 6, #KEYS do
  local queue = ARGV[i - 2]
  while taken < limit do
    local want = limit - taken
    local batch = redis.call('RPOP', KEYS[i], want)
    if not batch then break end
    for _, raw in ipairs(batch) do
      local tag, exchange, routing_key, code, reason
      if #raw > max_bytes then
        code = 'too_large'
        reason = 'message is ' .. #raw .. ' bytes, over the limit of ' .. max_bytes .. ' (TASKQ_MAX_MESSAGE_SIZE)'
      else
        tag, exchange, routing_key = describe(raw, queue)
        if not tag then code, reason = exchange, routing_key end
      end
      if reason then
        redis.call('LPUSH', KEYS[3], cjson.encode({reason = reason, queue = queue, payload = raw, time = tonumber(now)}))
        out[#out + 1] = 5 - i
        out[#out + 1] = code
        out[#out + 1] = first_string(raw, 'id') or ''
        out[#out + 1] = reason
      else
        held[#held + 1] = tag
        held[#held + 1] = '[' .. raw .. ', ' .. json_string(exchange) .. ', ' .. json_string(routing_key) .. ']'
        scores[#scores + 1] = now
        scores[#scores + 1] = tag
        out[#out + 1] = i - 5
        out[#out + 1] = tag
        places[#places + 1] = #out
        out[#out + 1] = raw
        taken = taken + 1
      end
    end
    if #batch < want then break end
  end
end

-- Copies of one envelope (pushed twice, or restored twice) share its tag, and so would one
-- unacked entry: a crash would then lose all copies but one. Each copy after the first,
-- in this batch or already held, gets a tag of its own: `<tag>+<n>`, unused.
local function unused_tag(tag, seen)
  local n = 1
  while seen[tag .. '+' .. n] or redis.call('HEXISTS', KEYS[1], tag .. '+' .. n) == 1 do
    n = n + 1
  end
  return tag .. '+' .. n
end

-- The envelope with its delivery tag replaced, or the text unchanged if it does not decode
-- (the worker dead-letters it then; its entry is still its own).
local function with_tag(raw, tag)
  local ok, envelope = pcall(cjson.decode, raw)
  if not ok or type(envelope) ~= 'table' or type(envelope.properties) ~= 'table' then return raw end
  envelope.properties.delivery_tag = tag
  return cjson.encode(envelope)
end

local function give_copies_their_own_tags()
  local seen = {}
  for first = 1, taken, 1000 do
    local last = math.min(first + 999, taken)
    local tags = {}
    for k = first, last do tags[#tags + 1] = held[2 * k - 1] end
    local present = redis.call('HMGET', KEYS[1], unpack(tags))
    for k = first, last do
      local tag = held[2 * k - 1]
      if seen[tag] or present[k - first + 1] then
        local old_raw = out[places[k] + 1]
        local fresh = unused_tag(tag, seen)
        local raw = with_tag(old_raw, fresh)
        held[2 * k - 1] = fresh
        held[2 * k] = '[' .. raw .. string.sub(held[2 * k], #old_raw + 2)
        scores[2 * k] = fresh
        out[places[k]] = fresh
        out[places[k] + 1] = raw
        tag = fresh
      end
      seen[tag] = true
    end
  end
end

give_copies_their_own_tags()
call_chunked('HSET', KEYS[1], held)
call_chunked('ZADD', KEYS[2], scores)
call_chunked('ZADD', KEYS[4], scores)
local starting = {}
for k = 1, math.min(to_mark, taken) do starting[k] = held[2 * k - 1] end
call_chunked('SADD', KEYS[5], starting)
return out
"#;

/// The one way a message leaves the held state, shared by every script that settles a held
/// message ([`REQUEUE`], [`DEFER`], [`DEAD_LETTER`], [`RECOVER`]; they run with it prepended,
/// see [`Scripts::new`]). The ack, a plain pipeline on the hot path, removes the same keys in
/// the same order (`RedisBroker::held_keys`).
///
/// * `KEYS[1]` unacked hash, `KEYS[2]` unacked_index zset, `KEYS[3]` leases zset, `KEYS[4]`
///   set of started messages. Scripts that use it put their own keys from `KEYS[5]`.
/// * `release(tag)` returns the unacked entry the tag held (`false` if none: settled already,
///   or fenced by a recovery), and whether the tag was in the started set.
pub(crate) const RELEASE: &str = r#"
local function release(tag)
  local held = redis.call('HGET', KEYS[1], tag)
  redis.call('HDEL', KEYS[1], tag)
  redis.call('ZREM', KEYS[2], tag)
  redis.call('ZREM', KEYS[3], tag)
  local started = redis.call('SREM', KEYS[4], tag) == 1
  return held, started
end
"#;

/// Puts unacked messages back at the front of their lists (the next to be popped), as kombu
/// restores them. A tag no longer in `unacked` (acked or restored by someone else) is skipped.
///
/// * `KEYS[1..4]` as for [`RELEASE`].
/// * `ARGV` triples: delivery tag, destination list, envelope text.
/// * Returns the number of messages put back.
pub(crate) const REQUEUE: &str = r#"
local moved = 0
for i = 1, #ARGV, 3 do
  if release(ARGV[i]) then
    redis.call('RPUSH', ARGV[i + 1], ARGV[i + 2])
    moved = moved + 1
  end
end
return moved
"#;

/// Parks an unacked message whose ETA is not due, so that it waits in Redis rather than in a
/// worker's memory.
///
/// * `KEYS[1..4]` as for [`RELEASE`], `KEYS[5]` ETA schedule zset, `KEYS[6]` ETA messages
///   hash.
/// * `ARGV[1]` delivery tag, `ARGV[2]` due time (seconds since the epoch), `ARGV[3]` the list
///   to return to, `ARGV[4]` envelope text.
/// * Returns 1 if parked, 0 if the tag was no longer unacked.
pub(crate) const DEFER: &str = r#"
if not release(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[6], ARGV[1], cjson.encode({ARGV[3], ARGV[4]}))
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
return 1
"#;

/// Sends messages again after the connection dropped during a send, skipping each one the
/// lost attempt did deliver. The drop does not say whether Redis ran the `LPUSH` before it, so
/// each message is looked for where it can be by now: still in its list (searched from the
/// head, where `LPUSH` put it, over at most [`RESEND_SEARCH_DEPTH`] entries), or already taken
/// by a worker (`unacked`) or parked for its ETA, both by its delivery tag. Only on this rare
/// path: a normal send is a plain `LPUSH`.
///
/// * `KEYS[1]` unacked hash, `KEYS[2]` ETA messages hash.
/// * `ARGV[1]` how deep to search each list, then pairs: destination list, envelope text.
/// * Returns the number of messages pushed (the others had arrived).
pub(crate) const RESEND: &str = r#"
local depth = tonumber(ARGV[1])
local pushed = 0
for i = 2, #ARGV, 2 do
  local list, envelope = ARGV[i], ARGV[i + 1]
  local arrived = redis.call('LPOS', list, envelope, 'MAXLEN', depth) ~= false
  if not arrived then
    local ok, decoded = pcall(cjson.decode, envelope)
    local props = ok and type(decoded) == 'table' and decoded.properties
    local tag = type(props) == 'table' and props.delivery_tag
    if type(tag) == 'string' then
      arrived = redis.call('HEXISTS', KEYS[1], tag) == 1 or redis.call('HEXISTS', KEYS[2], tag) == 1
    end
  end
  if not arrived then
    redis.call('LPUSH', list, envelope)
    pushed = pushed + 1
  end
end
return pushed
"#;

/// How many entries from a list's head [`RESEND`] searches for a message a lost attempt may
/// have pushed: other producers' sends since then stand in front of it. Beyond it, a message
/// that did arrive is queued twice, which at-least-once delivery allows.
pub(crate) const RESEND_SEARCH_DEPTH: usize = 10_000;

/// Moves parked messages that are due (by the server clock) to the front of their lists.
///
/// * `KEYS[1]` ETA schedule zset, `KEYS[2]` ETA messages hash.
/// * `ARGV[1]` max messages to move.
/// * Returns `{moved, next_due}`: the count moved and the due time of the next parked message
///   as a string (`""` when none is left).
pub(crate) const PROMOTE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, tag in ipairs(due) do
  local parked = redis.call('HGET', KEYS[2], tag)
  if parked then
    local entry = cjson.decode(parked)
    redis.call('RPUSH', entry[1], entry[2])
    redis.call('HDEL', KEYS[2], tag)
  end
  redis.call('ZREM', KEYS[1], tag)
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, next_due[2] or ''}
"#;

/// Moves an unacked message to the dead-letter list with the reason, in one step.
///
/// * `KEYS[1..4]` as for [`RELEASE`], `KEYS[5]` dead-letter list.
/// * `ARGV[1]` delivery tag, `ARGV[2]` the dead-letter entry (JSON with reason and payload).
/// * Returns 1 if moved, 0 if the tag was no longer unacked.
pub(crate) const DEAD_LETTER: &str = r#"
if not release(ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[5], ARGV[2])
return 1
"#;

/// Stores result records and publishes each to its waiters, in one step for a whole batch,
/// except where a SUCCESS is already stored: a redelivered duplicate must not overwrite a
/// success, as Celery's backend ensures. The stored status is found with a pattern rather
/// than by decoding the record.
///
/// Each record is written with `SET … GET`, which returns what it replaced, and the rare
/// replaced SUCCESS is written back: one command per record instead of a `GET` before each
/// write. The success written back keeps the new expiry, counted from this store.
///
/// * `KEYS` the `celery-task-meta-<id>` keys (each also the record's channel).
/// * `ARGV[1]` expiry in seconds (`0`: keep forever), then one record JSON per key.
/// * Returns the number of records stored.
pub(crate) const STORE_RESULTS: &str = r#"
local ttl = tonumber(ARGV[1])
local stored = 0
for i, key in ipairs(KEYS) do
  local record = ARGV[i + 1]
  local previous
  if ttl > 0 then
    previous = redis.call('SET', key, record, 'EX', ttl, 'GET')
  else
    previous = redis.call('SET', key, record, 'GET')
  end
  if previous and string.find(previous, '"status"%s*:%s*"SUCCESS"') then
    redis.call('SET', key, previous, 'KEEPTTL')
  else
    redis.call('PUBLISH', key, record)
    stored = stored + 1
  end
end
return stored
"#;

/// Renews the leases of messages a live worker holds. Both scores become the server's time:
/// the `taskq.leases` one, which taskq's recovery reads with `TASKQ_VISIBILITY_TIMEOUT`, and
/// the `unacked_index` one, which kombu's restore in a Python worker reads with its own
/// (longer) visibility timeout. So no recovery takes them while the worker lives. Tags no
/// longer unacked (acknowledged meanwhile, or recovered after the worker froze past its
/// lease) are not added back: they are returned, so the worker knows those messages are no
/// longer its own and never starts them.
///
/// A renewal adds no data, so it must work when Redis is full: under `noeviction`, Redis
/// refuses a script's first command that may grow memory (`ZADD`), but not once the script
/// has written something. Each renewal therefore starts with the `ZREM` of the old lease,
/// which never grows memory, and a worker's own leases never lapse because Redis is full.
///
/// * `KEYS[1]` unacked_index zset, `KEYS[2]` leases zset.
/// * `ARGV` the delivery tags.
/// * Returns the tags that are no longer held (usually none).
pub(crate) const RENEW: &str = r#"
local t = redis.call('TIME')
local now = string.format('%d.%06d', t[1], t[2])
local lost = {}
for i = 1, #ARGV do
  local tag = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], tag) then
    redis.call('ZREM', KEYS[2], tag)
    redis.call('ZADD', KEYS[2], now, tag)
    redis.call('ZADD', KEYS[1], now, tag)
  else
    lost[#lost + 1] = tag
  end
end
return lost
"#;

/// Returns messages whose lease lapsed (their worker died or froze) to the front of their
/// queue, as kombu's visibility restore does, marked redelivered and with its
/// `taskq_recoveries` header counted up (a message that keeps killing its worker is stopped)
/// and a new delivery tag (which fences the worker that lost it): the envelope edit of
/// `protocol::edit::recovered`, which the memory broker applies. Safe when many workers run
/// it at once: each message moves exactly once. Index entries without a message are dropped;
/// an entry that is not `[envelope, exchange, routing_key]` goes to the dead-letter list.
///
/// Two kinds of holder are told apart. A message a taskq worker holds has a lease in
/// `taskq.leases`, renewed while the worker lives, and lapses after the leased timeout
/// (`TASKQ_VISIBILITY_TIMEOUT`, short). A message a Python worker holds has no lease and is
/// never renewed; kombu's restore in the Python workers returns it, so by default it is not
/// touched here. Only when asked (`TASKQ_CELERY_VISIBILITY_TIMEOUT`) does it lapse, after
/// that unleased timeout.
///
/// * `KEYS[1..4]` as for [`RELEASE`] (a recovery of a message in the started set also counts
///   up its `taskq_crashes` header), `KEYS[5]` dead-letter list.
/// * `ARGV[1]` leased timeout in seconds, `ARGV[2]` unleased timeout in seconds (not below
///   the leased one; empty: unleased messages are left alone), `ARGV[3]` max messages,
///   `ARGV[4]` key prefix, `ARGV[5]` priority separator, `ARGV[6]` the priority steps,
///   ascending from 0, comma-separated (`0,3,6,9`; built by `BrokerKeys`, which builds the
///   same lists for publish and fetch).
/// * Returns the number of messages returned to their queues.
pub(crate) const RECOVER: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[3])
local restored = 0
local steps = {}
for step in string.gmatch(ARGV[6], '%d+') do steps[#steps + 1] = tonumber(step) end

-- kombu's bucket: the largest step not above the priority (steps ascend from 0).
local function bucket_of(priority)
  local bucket = 0
  for _, step in ipairs(steps) do
    if step <= priority then bucket = step end
  end
  return bucket
end

local function recover(tag)
  local held, started = release(tag)
  local ok, entry = pcall(cjson.decode, held or '')
  if held and ok and type(entry) == 'table' and type(entry[1]) == 'table' then
    local envelope = entry[1]
    local props = type(envelope.properties) == 'table' and envelope.properties or {}
    local info = type(props.delivery_info) == 'table' and props.delivery_info or {}
    local queue = type(entry[3]) == 'string' and entry[3] or tostring(info.routing_key or 'celery')
    local priority = math.min(math.max(tonumber(props.priority) or 0, 0), 9)
    local bucket = bucket_of(priority)
    local list = ARGV[4] .. queue .. (bucket > 0 and (ARGV[5] .. bucket) or '')
    if type(props.delivery_info) == 'table' then props.delivery_info.redelivered = true end
    if type(envelope.headers) ~= 'table' then envelope.headers = {} end
    envelope.headers.taskq_recoveries = (tonumber(envelope.headers.taskq_recoveries) or 0) + 1
    if started then
      envelope.headers.taskq_crashes = (tonumber(envelope.headers.taskq_crashes) or 0) + 1
    end
    -- A fresh tag fences the worker that lost it: if it was only frozen, its late ack of the
    -- old tag must not remove the new holder's entry.
    props.delivery_tag = tag .. '.' .. envelope.headers.taskq_recoveries
    redis.call('RPUSH', list, cjson.encode(envelope))
    restored = restored + 1
  elseif held then
    redis.call('LPUSH', KEYS[5], cjson.encode({reason = 'unacked entry is not [envelope, exchange, routing_key]', queue = '', payload = held, time = now}))
  end
end

local leased = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, limit)
for _, tag in ipairs(leased) do recover(tag) end
local room = limit - #leased
if room > 0 and ARGV[2] ~= '' then
  local unleased = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, room)
  for _, tag in ipairs(unleased) do recover(tag) end
end
return restored
"#;

/// Puts dead-lettered messages back at the back of their queues, oldest first (an operator
/// fixed the cause: deployed the missing task, raised a limit).
///
/// * `KEYS[1]` dead-letter list.
/// * `ARGV[1]` max messages, `ARGV[2]` key prefix.
/// * Returns the number of messages put back. Entries without a queue stay where they are.
pub(crate) const REQUEUE_DEAD: &str = r#"
local moved = 0
for _ = 1, tonumber(ARGV[1]) do
  local entry = redis.call('RPOP', KEYS[1])
  if not entry then break end
  local ok, dead = pcall(cjson.decode, entry)
  if ok and type(dead) == 'table' and type(dead.queue) == 'string' and dead.queue ~= ''
      and type(dead.payload) == 'string' then
    redis.call('LPUSH', ARGV[2] .. dead.queue, dead.payload)
    moved = moved + 1
  else
    redis.call('LPUSH', KEYS[1], entry)
    break
  end
end
return moved
"#;

/// Puts back the dead-lettered messages a match selects, oldest first: each matching entry
/// that names its queue leaves the list (`LREM` of that one entry) and its message goes to the
/// back of its queue's bucket-0 list. Entries that do not match, or name no queue, stay where
/// they are. The rule is `DeadLetterMatch::matches`'s.
///
/// * `KEYS[1]` the dead-letter list.
/// * `ARGV[1]` most messages moved, `ARGV[2]` the key prefix, `ARGV[3]` what is compared:
///   `reason` (the reason must contain `ARGV[4]`, plain, not a pattern) or `task_id` (the
///   message's `id` header must be `ARGV[4]`).
/// * Returns how many moved.
pub(crate) const REQUEUE_DEAD_MATCHING: &str = r#"
local max = tonumber(ARGV[1])
local field, text = ARGV[3], ARGV[4]
local function matches(dead)
  if field == 'task_id' then
    local ok, message = pcall(cjson.decode, dead.payload)
    return ok and type(message) == 'table' and type(message.headers) == 'table'
      and message.headers.id == text
  end
  return type(dead.reason) == 'string' and string.find(dead.reason, text, 1, true) ~= nil
end
local moved = 0
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #entries, 1, -1 do
  if moved >= max then break end
  local entry = entries[i]
  local ok, dead = pcall(cjson.decode, entry)
  if ok and type(dead) == 'table' and type(dead.queue) == 'string' and dead.queue ~= ''
      and type(dead.payload) == 'string' and matches(dead) then
    redis.call('LREM', KEYS[1], -1, entry)
    redis.call('LPUSH', ARGV[2] .. dead.queue, dead.payload)
    moved = moved + 1
  end
end
return moved
"#;

/// The scripts, loaded once (redis-rs sends EVALSHA and falls back to EVAL).
/// Records task ids as revoked at the server's clock, then trims the set to the revokes of
/// the last `expires` seconds and to the newest `max` ids (Celery's `LimitedSet` bounds). A
/// second revoke of an id moves its time forward; many workers recording the same revoke at
/// once leave one entry. The key expires when nothing is written to it for `expires`, so an
/// idle set vanishes on its own.
///
/// * `KEYS[1]` the revoked zset.
/// * `ARGV[1]` expiry in seconds, `ARGV[2]` most ids kept, `ARGV[3..]` the ids.
/// * Returns the server time used (seconds, as a string).
pub(crate) const REVOKE: &str = r#"
local expires = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = string.format('%d.%06d', t[1], t[2])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], now, ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.6f', tonumber(now) - expires))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(max + 1))
redis.call('PEXPIRE', KEYS[1], math.ceil(expires * 1000))
return now
"#;

/// Counts one finished header part of a chord, the way Celery 5.7's Redis backend does, so
/// that Python workers (5.3 to 5.7) and taskq workers can share one chord: the part is added
/// to `.j` once (a redelivered part is recognised by `<id>:<group_index>` in `.d`), and when
/// the count reaches the size (`.s`, plus `.t` for parts added later) the first worker to
/// claim `.c` sends the body. A chord already finished (`.c` = `done`) ignores late parts.
/// 5.3–5.6 workers do not read `.d` or `.c`; with them a part redelivered after the count was
/// complete can still send the body twice, as between those workers themselves.
///
/// * `KEYS[1]` `.j` zset, `KEYS[2]` `.t`, `KEYS[3]` `.s`, `KEYS[4]` `.d` set, `KEYS[5]` the
///   group's saved result, `KEYS[6]` `.c`.
/// * `ARGV[1]` `<id>:<group_index>`, `ARGV[2]` the `.j` member `[1, id, state, result]`,
///   `ARGV[3]` its score (the group index, or `+inf`), `ARGV[4]` expiry of the chord's keys in
///   seconds (`0`: none), `ARGV[5]` how long a claim holds, in seconds, `ARGV[6]` the claim
///   token.
/// * Returns `{counted, extra, size, claimed}`: parts counted, `.t`, `.s` (0 when unset), and
///   1 if this call claimed the body. `{-1, 0, 0, 0}` when the chord was finished already.
pub(crate) const CHORD_PART_RETURN: &str = r#"
if redis.call('GET', KEYS[6]) == 'done' then
  return {-1, 0, 0, 0}
end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[1])
end
local counted = redis.call('ZCOUNT', KEYS[1], '-inf', '+inf')
local expires = tonumber(ARGV[4])
if expires > 0 then
  for i = 1, 5 do
    redis.call('EXPIRE', KEYS[i], expires)
  end
end
local extra = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local size = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local claimed = 0
if size > 0 and counted == size + extra then
  if redis.call('SET', KEYS[6], ARGV[6], 'NX', 'EX', tonumber(ARGV[5])) then
    claimed = 1
  end
end
return {counted, extra, size, claimed}
"#;

/// Ends a chord whose body this worker sent (or failed): if the claim is still its own, the
/// count's keys go and `.c` becomes `done`, so that a late duplicate part is ignored.
///
/// * `KEYS[1]` `.j`, `KEYS[2]` `.t`, `KEYS[3]` `.s`, `KEYS[4]` `.d`, `KEYS[5]` `.c`.
/// * `ARGV[1]` the claim token, `ARGV[2]` how long `done` is kept, in seconds.
/// * Returns 1 when the chord was ended, 0 when the claim had lapsed to someone else.
pub(crate) const CHORD_FINISH: &str = r#"
if redis.call('GET', KEYS[5]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('SET', KEYS[5], 'done', 'EX', tonumber(ARGV[2]))
return 1
"#;

/// Fires one slot of a periodic entry: sends its message and records the slot in one step,
/// unless that slot (or a later one) was fired already. Two schedulers that both believe they
/// lead (a lease lapsing mid-tick) therefore still send each slot once, and a scheduler that
/// dies between two commands cannot leave a slot recorded but unsent or sent but unrecorded.
///
/// * `KEYS[1]` the `taskq.beat.slots` hash, `KEYS[2]` the queue's list, `KEYS[3]` the queue's
///   kombu binding set.
/// * `ARGV[1]` the entry name, `ARGV[2]` the slot (ms since the epoch), `ARGV[3]` the
///   envelope, `ARGV[4]` the binding member.
/// * Returns 1 when sent, 0 when the slot was fired already.
pub(crate) const BEAT_FIRE: &str = r#"
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if last >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

/// Takes the next turns of a rate-limited task (GCRA without burst): turns are one interval
/// apart on Redis's clock, whichever worker takes them, and the time the next one is free is
/// the only state.
///
/// * `KEYS[1]` the task's `taskq.rate.<task>` key.
/// * `ARGV[1]` the interval between turns, in microseconds, `ARGV[2]` how many turns to take
///   (one after the other).
/// * Returns how many microseconds from now the first turn taken starts (0: at once); the
///   others follow it one interval apart. The key expires a second after the last turn it
///   gave out, so an idle task leaves nothing.
pub(crate) const RATE_TURN: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
if turn < now then
  turn = now
end
local next_free = turn + tonumber(ARGV[1]) * tonumber(ARGV[2])
local keep_ms = math.floor((next_free - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', next_free), 'PX', keep_ms)
return turn - now
"#;

/// Sends a unique call: queues its message and takes its lock in one step, unless another
/// call holds the lock, so that concurrent producers queue it once.
///
/// * `KEYS[1]` the call's `taskq.unique.<key>` lock, `KEYS[2]` the queue's list, `KEYS[3]` the
///   queue's kombu binding set.
/// * `ARGV[1]` the task id, `ARGV[2]` how long the lock lasts at most, in milliseconds,
///   `ARGV[3]` the envelope, `ARGV[4]` the binding member.
/// * Returns nil when queued, else the id of the call holding the lock.
pub(crate) const UNIQUE_SEND: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('LPUSH', KEYS[2], ARGV[3])
return false
"#;

/// Takes or keeps the periodic scheduler's lead: renews the lease when `token` holds it,
/// takes it when nobody does.
///
/// * `KEYS[1]` the `taskq.beat.leader` key.
/// * `ARGV[1]` the token, `ARGV[2]` the lease in milliseconds.
/// * Returns 1 when `token` leads, 0 when another does.
pub(crate) const BEAT_LEAD: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// Gives up what a holder holds, if it still does: deletes a key only while it holds the
/// given value. A scheduler gives up its lead (`taskq.beat.leader`, its token); a worker
/// releases a unique call's lock once its task is done (`taskq.unique.<key>`, the task id),
/// which may have lapsed and been taken by a later call meanwhile.
///
/// * `KEYS[1]` the key. `ARGV[1]` the holder's value.
/// * Returns 1 when deleted, 0 when another holds it (or nobody).
pub(crate) const GIVE_UP_IF_HELD: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) store_results: Script,
    pub(crate) fetch: Script,
    pub(crate) requeue: Script,
    pub(crate) defer: Script,
    pub(crate) promote: Script,
    pub(crate) dead_letter: Script,
    pub(crate) renew: Script,
    pub(crate) recover: Script,
    pub(crate) requeue_dead: Script,
    pub(crate) requeue_dead_matching: Script,
    pub(crate) resend: Script,
    pub(crate) revoke: Script,
    pub(crate) chord_part_return: Script,
    pub(crate) chord_finish: Script,
    pub(crate) beat_fire: Script,
    pub(crate) beat_lead: Script,
    pub(crate) rate_turn: Script,
    pub(crate) unique_send: Script,
    pub(crate) give_up_if_held: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            store_results: Script::new(STORE_RESULTS),
            fetch: Script::new(FETCH),
            requeue: releasing(REQUEUE),
            defer: releasing(DEFER),
            promote: Script::new(PROMOTE),
            dead_letter: releasing(DEAD_LETTER),
            renew: Script::new(RENEW),
            recover: releasing(RECOVER),
            requeue_dead: Script::new(REQUEUE_DEAD),
            requeue_dead_matching: Script::new(REQUEUE_DEAD_MATCHING),
            resend: Script::new(RESEND),
            revoke: Script::new(REVOKE),
            chord_part_return: Script::new(CHORD_PART_RETURN),
            chord_finish: Script::new(CHORD_FINISH),
            beat_fire: Script::new(BEAT_FIRE),
            beat_lead: Script::new(BEAT_LEAD),
            rate_turn: Script::new(RATE_TURN),
            unique_send: Script::new(UNIQUE_SEND),
            give_up_if_held: Script::new(GIVE_UP_IF_HELD),
        }
    }
}

/// A script that settles held messages, with [`RELEASE`] in front of its body.
fn releasing(body: &str) -> Script {
    Script::new(&format!("{RELEASE}{body}"))
}
