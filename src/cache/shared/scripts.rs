//! The Lua scripts of the cache's shared tier (see `mod.rs` for the layout they keep).
//!
//! Every script does a bounded amount of work per call: a prefix purge is run in chunks of
//! [`PREFIX_CHUNK`] paths, found through a sorted set of paths in lexical order (O(log n +
//! matches)), so no call outlives the command timeout however many paths are indexed, and a
//! call that does time out is never re-sent at once (see `Shared::flush_pending`).

/// Paths one prefix-purge call handles at most.
pub const PREFIX_CHUNK: usize = 256;

/// `SET` the entry within the tier's memory budget (and the vary record, kept as long as its
/// longest variant), and index the entry key under its path and tags, and the path in the
/// lexical set of paths. Index scores are expiry times on Redis's clock; each store prunes the
/// expired members of what it touches.
///
/// The budget: every stored value is accounted (its size plus a fixed overhead for its key and
/// index members) in a sorted set by expiry and a hash of sizes, with the total in one key. A
/// store first forgets expired entries, then deletes the entries that expire soonest (at most
/// 32) until the new one fits; if it still does not, the value is not stored (it stays indexed,
/// so purges reach the L1 copies).
///
/// Refused (0) when the purge generations differ from those the request read before the app
/// ran: a response computed while a purge went by may predate it. 1: stored (or index only, as
/// asked); 2: indexed, but over the budget.
///
/// KEYS: 1 entry, 2 vary record, 3 paths (lexical), 4 global generation, 5 path generation,
/// 6 path index, 7 paths by expiry, 8 budget (entries by expiry), 9 budget (sizes), 10 budget
/// (total), 11... tag indexes. ARGV: 1 px, 2 entry value ('' = index only), 3 vary value
/// ('' = none), 4 paths member, 5 index slack, 6 global generation seen, 7 path generation seen,
/// 8 accounted size, 9 budget.
pub const STORE: &str = r"
if (redis.call('GET', KEYS[4]) or '') ~= ARGV[6] or (redis.call('GET', KEYS[5]) or '') ~= ARGV[7] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local px = tonumber(ARGV[1])
local keep = px + tonumber(ARGV[5])
local score = now + keep
local result = 1
if ARGV[2] ~= '' then
  local size, budget = tonumber(ARGV[8]), tonumber(ARGV[9])
  local total = tonumber(redis.call('GET', KEYS[10]) or '0')
  local function forget(k)
    local s = redis.call('HGET', KEYS[9], k)
    if s then
      total = total - tonumber(s)
      redis.call('HDEL', KEYS[9], k)
    end
    redis.call('ZREM', KEYS[8], k)
  end
  forget(KEYS[1])
  for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, 32)) do forget(k) end
  local evicted = 0
  while total + size > budget and evicted < 32 do
    local k = redis.call('ZRANGE', KEYS[8], 0, 0)[1]
    if not k then break end
    redis.call('DEL', k)
    forget(k)
    evicted = evicted + 1
  end
  if total < 0 then total = 0 end
  if total + size <= budget then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', px)
    redis.call('HSET', KEYS[9], KEYS[1], size)
    redis.call('ZADD', KEYS[8], now + px, KEYS[1])
    total = total + size
  else
    redis.call('DEL', KEYS[1])
    result = 2
  end
  redis.call('SET', KEYS[10], total)
end
local members = {KEYS[1]}
if ARGV[3] ~= '' then
  local old = redis.call('PTTL', KEYS[2])
  if old < px then old = px end
  redis.call('SET', KEYS[2], ARGV[3], 'PX', old)
  members[2] = KEYS[2]
end
local function index(k, member)
  redis.call('ZADD', k, score, member)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if redis.call('PTTL', k) < keep then redis.call('PEXPIRE', k, keep) end
end
redis.call('ZADD', KEYS[3], 0, ARGV[4])
local until_ = redis.call('ZSCORE', KEYS[7], ARGV[4])
if not until_ or tonumber(until_) < score then redis.call('ZADD', KEYS[7], score, ARGV[4]) end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 16)) do
  redis.call('ZREM', KEYS[3], m)
  redis.call('ZREM', KEYS[7], m)
end
for i = 6, #KEYS do
  if i == 6 or i > 10 then
    for _, m in ipairs(members) do index(KEYS[i], m) end
  end
end
return result
";

/// Deletes every key an index lists, the index itself, and (for a path) its member of the
/// path sets; publishes the purge when anything was indexed, or always when asked.
///
/// Bumps the generation (the path's, or the global one for a tag) to a fresh value of the
/// purge counter, so stores of responses computed meanwhile are refused.
///
/// KEYS: index, paths (lexical), purge counter, generation, paths by expiry. ARGV: paths member
/// ('' for a tag), channel, message, always ('1'), generation expiry (ms, '' for none).
pub const PURGE_INDEX: &str = r"
local gen = redis.call('INCR', KEYS[3])
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], gen, 'PX', ARGV[5]) else redis.call('SET', KEYS[4], gen) end
local m = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #m, 500 do redis.call('DEL', unpack(m, i, math.min(i + 499, #m))) end
redis.call('DEL', KEYS[1])
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
end
if #m > 0 or ARGV[4] == '1' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return #m
";

/// One chunk of a prefix purge: the first `ARGV[4]` paths in the lexical range, their indexed
/// keys and their members. Bumps the global generation (every chunk: a store racing any part
/// of the purge is refused). Returns `{paths, keys}` handled; fewer paths than asked means done.
///
/// KEYS: paths (lexical), purge counter, global generation, paths by expiry. ARGV: range start,
/// range end (`ZRANGEBYLEX` bounds), path index key base, chunk size.
pub const PURGE_PREFIX_CHUNK: &str = r"
redis.call('SET', KEYS[3], redis.call('INCR', KEYS[2]))
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, member in ipairs(members) do
  local hex = string.match(member, '\n(%x+)$')
  if hex then
    local zk = ARGV[3] .. hex
    local m = redis.call('ZRANGE', zk, 0, -1)
    for i = 1, #m, 500 do redis.call('DEL', unpack(m, i, math.min(i + 499, #m))) end
    n = n + #m
    redis.call('DEL', zk)
  end
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[4], member)
end
return {#members, n}
";

/// Reads an entry, its PTTL and the purge generations at one instant. KEYS: entry, global
/// generation, path generation. (`false` for a missing key: a nil inside a Lua table would cut
/// the reply short.)
pub const READ: &str = r"
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
";
