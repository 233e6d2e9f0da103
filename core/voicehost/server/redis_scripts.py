"""The Lua scripts :class:`~voicehost.server.redis_state.RedisLiveState` runs, each one
atomic on the Redis server (``EVALSHA``). Keys are ``<prefix>:<kind>:<CallSid>`` (see
:mod:`voicehost.server.redis_state`); TTLs are milliseconds.

:data:`ADMIT_CALL` and :data:`START_STREAM` are the two steps on the path of every call
(the voice webhook, the stream's ``start``), one round trip each.
"""

from __future__ import annotations

__all__ = ["ADMIT_CALL", "REFRESH", "RELEASE", "START_STREAM", "TAKE_TOKEN", "UPDATE_CALL"]

# KEYS[1] token key; ARGV[1] the presented token. Returns the stored token (deleted when it
# matched), or nil: the caller compares in constant time.
TAKE_TOKEN = """
local v = redis.call('GET', KEYS[1])
if v and v == ARGV[1] then redis.call('DEL', KEYS[1]) end
return v
"""
# KEYS[1] call key; ARGV field, value pairs. Returns the updated JSON, or nil when unknown.
UPDATE_CALL = """
local v = redis.call('GET', KEYS[1])
if not v then return nil end
local r = cjson.decode(v)
for i = 1, #ARGV, 2 do r[ARGV[i]] = ARGV[i + 1] end
local out = cjson.encode(r)
redis.call('SET', KEYS[1], out, 'KEEPTTL')
return out
"""
# KEYS[1] live key; ARGV[1] owner. Deletes the claim only when the owner holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] live key, KEYS[2] call key; ARGV[1] owner, ARGV[2] live TTL ms, ARGV[3] record TTL
# ms. Renews the owner's claim (re-claims it when it expired, e.g. across a Redis restart)
# and the call's record. Returns 1, or 0 when another instance holds the call.
REFRESH = """
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS[1] live key, KEYS[2] call key, KEYS[3] token key; ARGV[1] the record's JSON, ARGV[2]
# record TTL ms, ARGV[3] a fresh token, ARGV[4] token TTL ms. Nil when the call is live (a
# replayed webhook); else stores the record and the token and returns 1.
ADMIT_CALL = """
if redis.call('EXISTS', KEYS[1]) == 1 then return nil end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return 1
"""
# KEYS[1] token key, KEYS[2] call key, KEYS[3] live key; ARGV[1] the presented token,
# ARGV[2] owner, ARGV[3] live TTL ms, ARGV[4] record TTL ms. Returns {stored token or false,
# record JSON or false, 1 when claimed else 0}. Only a matching token is spent and only then
# is the call claimed (SET NX); the caller compares the tokens again in constant time.
START_STREAM = """
local stored = redis.call('GET', KEYS[1])
if not stored or stored ~= ARGV[1] then return {stored or false, false, 0} end
redis.call('DEL', KEYS[1])
local record = redis.call('GET', KEYS[2])
local claimed = redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3])
if claimed then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return {stored, record or false, claimed and 1 or 0}
"""
