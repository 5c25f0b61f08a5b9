-- wrk: GET /bookings/$BOOKING with its buyer's bearer token.
local path = "/bookings/" .. os.getenv("BOOKING")
local token = os.getenv("TOKEN")

request = function()
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

done = function(summary, latency)
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
