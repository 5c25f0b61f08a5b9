-- wrk: POST /events/$EVENT/bookings with a buyer's bearer token, spreading
-- best-available bookings of 1-4 seats over sections A-J, subsections 1-10.
local event = os.getenv("EVENT")
local token = os.getenv("TOKEN")
local sections = { "A", "B", "C", "D", "E", "F", "G", "H", "I", "J" }

request = function()
  local body = string.format(
    '{"section":"%s","subsection":%d,"quantity":%d,"seat_selection_mode":"best_available"}',
    sections[math.random(#sections)], math.random(10), math.random(4))
  return wrk.format("POST", "/events/" .. event .. "/bookings",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end

local statuses = {}
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency)
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
