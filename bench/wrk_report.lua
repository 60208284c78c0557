-- wrk script: prints one line "WRK_JSON {...}" with the summary and latency percentiles (microseconds).
-- With WRK_COUNT_CACHE=1 in the environment it also counts X-Cache HIT/MISS answers and non-2xx statuses
-- (a per-response Lua callback: only for runs that do not measure raw throughput).
local count_cache = os.getenv("WRK_COUNT_CACHE") == "1"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  hits = 0
  misses = 0
  other = 0
  bad_status = 0
end

if count_cache then
  function response(status, headers, body)
    if status < 200 or status > 299 then bad_status = bad_status + 1 end
    local cache = headers["X-Cache"] or headers["x-cache"]
    if cache == "HIT" then
      hits = hits + 1
    elseif cache == "MISS" then
      misses = misses + 1
    else
      other = other + 1
    end
  end
end

function done(summary, latency, requests)
  local h, m, o, b = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    h = h + (thread:get("hits") or 0)
    m = m + (thread:get("misses") or 0)
    o = o + (thread:get("other") or 0)
    b = b + (thread:get("bad_status") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"cache":{"counted":%s,"hit":%d,"miss":%d,"other":%d,"bad_status":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    tostring(count_cache), h, m, o, b))
end
