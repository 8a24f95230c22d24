-- wrk script for a write pair: a create (bodies of args[1], in turn), then a follow-up built from
-- args[2] with __ID__ replaced by the first "id" of the create's response. Needs one connection
-- per thread (wrk -t N -c N), so that each thread's responses arrive in the order it sent them.
-- __UUID__ in a create body becomes a fresh random UUID (for peers that take the key from the
-- client).

dofile(os.getenv("BENCH_LUA_DIR") .. "/bodies.lua")

function init(args)
  headers = make_headers()
  prepared = read_lines(args[1])
  follow_up = read_lines(args[2])[1]
  position = (thread_index * 7919) % #prepared
  graphql_errors = 0
  last_error = ""
  pending_id = nil
  sent_create = false
  math.randomseed(os.time() * 100 + thread_index)
end

function uuid4()
  local template = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
  return (string.gsub(template, "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

function request()
  if pending_id then
    local body = string.gsub(follow_up, "__ID__", function() return pending_id end)
    pending_id = nil
    sent_create = false
    return wrk.format("POST", nil, headers, body)
  end
  position = position % #prepared + 1
  sent_create = true
  local body = string.gsub(prepared[position], "__UUID__", uuid4)
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  local failed = check(status, body)
  if sent_create and not failed then
    pending_id = string.match(body, '"id"%s*:%s*"([^"]+)"')
  end
end
