//! The server-side Lua scripts behind the shared limit counters, and the calls that run
//! them. Each script reads the Redis server's clock (`TIME`), so every gateway sees the
//! same minute, and checks and adds in one atomic call: no gateway can read a counter
//! between another's check and its increment (Helicone's GET-then-SET race).
//!
//! Keys (all under `tollgate:`; integers only: nano-dollars, tokens, requests):
//!
//! - `budget:key:<id>:<period-start>`, `budget:user:<id>:<period-start>`: spend in the
//!   period starting at that unix second (0 for all time). Created only by a rebuild
//!   from the store (`SET ... NX`), never by an increment, so a counter lost to a Redis
//!   restart or flush is refused to every increment until it is rebuilt with the store's
//!   authoritative sum, once (never an additive reseed: LiteLLM #28247). They expire an
//!   hour after their period ends (all-time ones after a week, then rebuilt): no reset job.
//! - `tpm:<id>:<minute>`, `rpm:<id>:<minute>`: tokens and requests in the server's
//!   minute; expire after two minutes.
//! - `reserved:<counter>:<minute>`: estimates reserved by requests admitted in that
//!   minute, given back when each request is settled. Counted for [`RESERVED_MINUTES`]
//!   minutes, then they expire: a reservation whose settlement never came (a gateway
//!   killed, Redis unreachable at that moment) stops counting by itself instead of
//!   holding the counter up for good (LiteLLM #30460's drift above the database).

use redis::aio::ConnectionManager;
use redis::Script;
use tollgate_filters::limits::Refused;

/// How many minutes a reservation counts for (the longest a request is expected to
/// run; one running longer is no longer reserved for after that, only settled).
pub const RESERVED_MINUTES: i64 = 15;

/// Shared by both scripts: the counters' names.
const PRELUDE: &str = r"
local P = 'tollgate:'
local now = tonumber(redis.call('TIME')[1])
local minute = now - now % 60
local function name(kind, id)
  if kind == 'k' then return 'budget:key:' .. id end
  if kind == 'u' then return 'budget:user:' .. id end
  if kind == 't' then return 'tpm:' .. id end
  return 'rpm:' .. id
end
local function is_budget(kind) return kind == 'k' or kind == 'u' end
local function counter(kind, id, window)
  if is_budget(kind) then return P .. name(kind, id) .. ':' .. window end
  return P .. name(kind, id) .. ':' .. minute
end
local function bucket(kind, id, m) return P .. 'reserved:' .. name(kind, id) .. ':' .. m end
";

/// ARGV: the reservations' lifetime in minutes, the number of claims, then five per
/// claim: kind (`k` key budget, `u` user budget, `t` tokens per minute, `r` requests per
/// minute), id, window (the budget's period start), limit, amount.
/// Returns `{1, minute}` when admitted (the reservations are held in that minute's
/// bucket), `{0, claim, spent, reserved}` when refused, `{2, claim...}` when budget
/// counters are missing (nothing was added: rebuild them and call again).
const RESERVE: &str = r"
local minutes = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local function held(kind, id)
  if kind == 'r' then return 0 end
  local keys = {}
  for m = minute - 60 * (minutes - 1), minute, 60 do
    keys[#keys + 1] = bucket(kind, id, m)
  end
  local sum = 0
  for _, v in ipairs(redis.call('MGET', unpack(keys))) do
    if v then sum = sum + tonumber(v) end
  end
  return sum
end
local missing = {2}
for i = 0, n - 1 do
  local b = 3 + i * 5
  if is_budget(ARGV[b]) and redis.call('EXISTS', counter(ARGV[b], ARGV[b + 1], ARGV[b + 2])) == 0 then
    missing[#missing + 1] = i
  end
end
if #missing > 1 then return missing end
for i = 0, n - 1 do
  local b = 3 + i * 5
  local kind, id = ARGV[b], ARGV[b + 1]
  local spent = tonumber(redis.call('GET', counter(kind, id, ARGV[b + 2])) or '0')
  local reserved = held(kind, id)
  if spent + reserved >= tonumber(ARGV[b + 3]) then return {0, i, spent, reserved} end
end
for i = 0, n - 1 do
  local b = 3 + i * 5
  local kind, id, amount = ARGV[b], ARGV[b + 1], ARGV[b + 4]
  if kind == 'r' then
    local k = counter(kind, id, ARGV[b + 2])
    redis.call('INCR', k)
    redis.call('EXPIRE', k, 120)
  elseif amount ~= '0' then
    local k = bucket(kind, id, minute)
    redis.call('INCRBY', k, amount)
    redis.call('EXPIRE', k, 60 * minutes + 60)
  end
end
return {1, minute}
";

/// ARGV: one group or more, each the minute its reservations were made in, the number
/// of settlements, then five per settlement: kind, id, window, reserved, spent (one
/// group per request settled; a gateway sends what it settled since its last call in
/// one, so a round trip is not paid per request). Gives each reservation back
/// (if its bucket still exists, never below 0) and adds what was spent: tokens to the
/// server's current minute, a cost to its period's counter if that exists (a missing
/// one is rebuilt from the store, which holds this cost too).
const SETTLE: &str = r"
local g = 1
while ARGV[g] do
  local made = ARGV[g]
  local n = tonumber(ARGV[g + 1])
  for i = 0, n - 1 do
    local b = g + 2 + i * 5
    local kind, id, window, reserved, spent = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
    local k = bucket(kind, id, made)
    if reserved ~= '0' and redis.call('EXISTS', k) == 1 and redis.call('DECRBY', k, reserved) < 0 then
      redis.call('SET', k, 0, 'KEEPTTL')
    end
    if spent ~= '0' then
      local c = counter(kind, id, window)
      if kind == 't' then
        redis.call('INCRBY', c, spent)
        redis.call('EXPIRE', c, 120)
      elseif redis.call('EXISTS', c) == 1 then
        redis.call('INCRBY', c, spent)
      end
    end
  end
  g = g + 2 + n * 5
end
return 1
";

/// Which counter, as the scripts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    KeyBudget,
    UserBudget,
    Tokens,
    Requests,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::KeyBudget => "k",
            Kind::UserBudget => "u",
            Kind::Tokens => "t",
            Kind::Requests => "r",
        }
    }

    /// The Redis key of a budget counter (the scripts build the same names).
    pub fn budget_key(self, id: &str, window: i64) -> String {
        match self {
            Kind::KeyBudget => format!("tollgate:budget:key:{id}:{window}"),
            _ => format!("tollgate:budget:user:{id}:{window}"),
        }
    }
}

/// A claim or a settlement, owned, to cross to the Redis runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    pub id: String,
    pub window: i64,
    /// A claim's limit; a settlement's reservation to give back.
    pub first: u64,
    /// A claim's amount; a settlement's metered amount.
    pub second: u64,
}

/// What the reserve script answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Reserved in the bucket of this server minute.
    Admitted(i64),
    Refused(Refused),
    /// The budget counters of these items are missing.
    Missing(Vec<usize>),
}

/// Both scripts, loaded once (then run by their SHA: `EVALSHA`, falling back to `EVAL`
/// once after a Redis restart forgot them).
pub struct Scripts {
    reserve: Script,
    settle: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            reserve: Script::new(&format!("{PRELUDE}{RESERVE}")),
            settle: Script::new(&format!("{PRELUDE}{SETTLE}")),
        }
    }
}

fn push_items(inv: &mut redis::ScriptInvocation<'_>, items: &[Item]) {
    inv.arg(items.len());
    for it in items {
        inv.arg(it.kind.code())
            .arg(&it.id)
            .arg(it.window)
            .arg(it.first)
            .arg(it.second);
    }
}

impl Scripts {
    /// Checks every claim and, if all are under their limits, adds to every one.
    pub async fn reserve(
        &self,
        conn: &mut ConnectionManager,
        claims: &[Item],
    ) -> redis::RedisResult<Reply> {
        let mut inv = self.reserve.prepare_invoke();
        inv.arg(RESERVED_MINUTES);
        push_items(&mut inv, claims);
        let reply: Vec<i64> = inv.invoke_async(conn).await?;
        let unsigned = |i: usize| reply.get(i).map_or(0, |v| u64::try_from(*v).unwrap_or(0));
        match reply.first() {
            Some(1) => Ok(Reply::Admitted(reply.get(1).copied().unwrap_or(0))),
            Some(0) => Ok(Reply::Refused(Refused {
                claim: usize::try_from(unsigned(1)).unwrap_or(usize::MAX),
                spent: unsigned(2),
                reserved: unsigned(3),
            })),
            Some(2) => Ok(Reply::Missing(
                reply[1..]
                    .iter()
                    .filter_map(|i| usize::try_from(*i).ok())
                    .collect(),
            )),
            _ => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "unexpected reply from the reserve script",
            ))),
        }
    }

    /// Gives back what was reserved in minute `made` and adds what was spent.
    pub async fn settle(
        &self,
        conn: &mut ConnectionManager,
        made: i64,
        settles: &[Item],
    ) -> redis::RedisResult<()> {
        self.settle_all(conn, &[(made, settles.to_vec())]).await
    }

    /// [`Self::settle`] for several requests at once, in one call: each group is the
    /// minute its reservations were made in and its settlements.
    pub async fn settle_all(
        &self,
        conn: &mut ConnectionManager,
        groups: &[(i64, Vec<Item>)],
    ) -> redis::RedisResult<()> {
        let mut inv = self.settle.prepare_invoke();
        for (made, settles) in groups {
            inv.arg(made);
            push_items(&mut inv, settles);
        }
        inv.invoke_async::<()>(conn).await
    }
}

/// Sets a missing budget counter to the store's sum; does nothing to one that exists
/// (another gateway rebuilt it first, or it counted on since): never added to.
pub async fn rebuild(
    conn: &mut ConnectionManager,
    key: &str,
    sum: u64,
    ttl_s: u64,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(sum)
        .arg("NX")
        .arg("EX")
        .arg(ttl_s.max(1))
        .query_async::<()>(conn)
        .await
}
