-- wrk script: POSTs the JSON bodies of a file (one a line, args[1]) in turn, each thread starting
-- elsewhere in the list, with Authorization from $BENCH_TOKEN when set. Counts responses that are
-- 2xx but carry GraphQL `errors` (wrk itself counts non-2xx and socket errors), and prints one
-- `BENCH_RESULT {json}` line at the end for bench/run.py.

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("thread_index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

function make_headers()
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  return headers
end

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(lines, line)
    end
  end
  return lines
end

function init(args)
  local headers = make_headers()
  prepared = {}
  for _, body in ipairs(read_lines(args[1])) do
    table.insert(prepared, wrk.format("POST", nil, headers, body))
  end
  position = (thread_index * 7919) % #prepared
  graphql_errors = 0
  last_error = ""
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

-- true when a 2xx response carries GraphQL errors
function check(status, body)
  if status >= 200 and status < 300 and string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
    last_error = string.sub(body, 1, 300)
    return true
  end
  return status < 200 or status >= 300
end

function response(status, headers, body)
  check(status, body)
end

function done(summary, latency, requests)
  local graphql = 0
  local sample = ""
  for _, thread in ipairs(threads) do
    graphql = graphql + (thread:get("graphql_errors") or 0)
    local last = thread:get("last_error")
    if last and last ~= "" then
      sample = last
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, '
      .. '"graphql_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, '
      .. '"max_us": %d, "error_sample": "%s"}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, graphql, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, (string.gsub(sample, '[^%w%s:,.{}_-]', ' '))))
end
