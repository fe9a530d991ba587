# frozen_string_literal: true

# The Ruby SDK's per-call cost over the real reference server, as JSON.
#
#   ruby -I sdk-ruby/lib benchmarks/sdk_ruby_calls.rb [--requests N] [--hits N] [--rounds N] [--out FILE]
#
# Starts the reference server (Secinfra::Testing::ReferenceServer, test
# hooks off, real TLS, a fresh data directory) and calls it through one
# Secinfra::Client with the admin identity, from one thread:
#
# - get_secret_hit, check_hit: a fresh cache hit of get_secret and of check
#   (no request), in microseconds per call: --hits calls per round, the
#   median of --rounds rounds, after a warm-up round (target: at most 5 µs,
#   issue 19), by the wall clock and by this thread's CPU time (cpu_*: what
#   holds on a machine busy with other work, where the wall clock does not);
# - get_secret_uncached against raw: every call goes to the server
#   (use_cache: false), against the same GET (path, headers) sent with a
#   bare Net::HTTP client holding one kept-alive mTLS connection with the
#   same certificate, key and trust bundle. Both keep one connection open
#   for the whole run; the rounds alternate raw, sdk, sdk, raw, ... so that
#   both see the same drift, and the ratio sdk / raw is of the medians of
#   the rounds' per-call times (target: at most 1.10, issue 19). The server's
#   cost is in both, so the difference is what the SDK adds per call;
#   uncached_cpu_ratio compares the client thread's CPU per call alone.
#
# No observer is registered (the hot path must not pay for them). Bounded:
# --requests uncached calls and raw requests per setup, --hits x --rounds
# cache hits per path. --handshakes is accepted (and ignored) so that one
# set of `nox -s bench` arguments serves every benchmark.

require "benchmark"
require "json"
require "net/http"
require "openssl"
require "optparse"
require "secinfra"
require "secinfra/testing"

SECRET = "bench/db/password"
ADMIN_ID = "spiffe://secinfra.local/secinfra/admin"

# Seconds per call of +n+ calls of the block: [wall clock, this thread's CPU].
def per_call(n)
  wall = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  cpu = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
  n.times { yield }
  [(Process.clock_gettime(Process::CLOCK_MONOTONIC) - wall) / n,
   (Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID) - cpu) / n]
end

def median(values)
  sorted = values.sort
  mid = sorted.size / 2
  sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
end

def micros(seconds) = (seconds * 1e6).round(2)

# Medians (and extremes) of rounds of [wall, cpu] per call.
def summary(times, per_round)
  wall = times.map(&:first)
  cpu = times.map(&:last)
  { "calls_per_round" => per_round, "rounds" => times.size, "median_us" => micros(median(wall)),
    "min_us" => micros(wall.min), "max_us" => micros(wall.max), "cpu_median_us" => micros(median(cpu)) }
end

# Cache hits of the block: a warm-up round, then +rounds+ rounds of +n+.
def hits(n, rounds, &call)
  per_call(n, &call)
  summary(Array.new(rounds) { per_call(n, &call) }, n)
end

# A bare Net::HTTP client with the admin identity, started (one connection).
def raw_client(server)
  admin = File.join(server.data_dir, "admin")
  uri = URI.parse(server.url)
  http = Net::HTTP.new(uri.host, uri.port)
  http.use_ssl = true
  http.min_version = OpenSSL::SSL::TLS1_2_VERSION
  http.verify_mode = OpenSSL::SSL::VERIFY_PEER
  http.verify_hostname = false
  http.cert_store = Secinfra::Identity.load_bundle(File.read(server.bundle_file)).store
  http.cert = OpenSSL::X509::Certificate.new(File.read(File.join(admin, "cert.pem")))
  http.key = OpenSSL::PKey.read(File.read(File.join(admin, "key.pem")))
  http.keep_alive_timeout = 30
  http.start
end

def main
  options = { requests: 1000, hits: 20_000, rounds: 7, out: nil }
  OptionParser.new do |o|
    o.on("--requests N", Integer, "uncached calls and raw requests per setup")
    o.on("--hits N", Integer, "cache hits per round and path")
    o.on("--rounds N", Integer, "rounds per setup")
    o.on("--handshakes N", Integer, "ignored (an argument of the mTLS benchmarks)")
    o.on("--out FILE", "also write the JSON here")
  end.parse!(into: options)
  rounds = options[:rounds]
  per_round = [options[:requests] / rounds, 1].max

  server = Secinfra::Testing::ReferenceServer.new(test_hooks: false).start
  client = server.admin_client
  raw = nil
  begin
    client.secrets.put_secret(name: SECRET, value: "x" * 64)
    tuple = Secinfra::V1::TupleKey.new(user: "workload:#{ADMIN_ID}", relation: "admin", object: "system:root")
    client.authz.check(tuple_key: tuple).allowed or raise "the admin is not allowed"
    [-> { client.secrets.get_secret(name: SECRET) }, -> { client.authz.check(tuple_key: tuple) }].each do |call|
      call.call
      Secinfra.capture(&call).last.from_cache or raise "not a cache hit"
    end
    results = {
      "get_secret_hit" => hits(options[:hits], rounds) { client.secrets.get_secret(name: SECRET) },
      "check_hit" => hits(options[:hits], rounds) { client.authz.check(tuple_key: tuple) }
    }

    no_cache = Secinfra::CallOptions.new(use_cache: false)
    path = "/v1/secrets/#{SECRET}"
    headers = { "User-Agent" => Secinfra::Runtime::Request.user_agent, "Accept" => "application/json",
                "Secinfra-Attempt" => "1" }
    raw = raw_client(server)
    setups = {
      "raw" => lambda do
        response = raw.request(Net::HTTP::Get.new(path, headers))
        response.code == "200" or raise "raw: HTTP #{response.code}"
        JSON.parse(response.body)
      end,
      "sdk" => -> { client.secrets.get_secret(name: SECRET, call_options: no_cache) }
    }
    setups.each_value { |call| per_call(10, &call) } # warm: connections, code paths
    times = setups.transform_values { [] }
    rounds.times do |i|
      order = i.even? ? setups.keys : setups.keys.reverse # ABBA: both see the same drift
      order.each { |name| times[name] << per_call(per_round, &setups[name]) }
    end
    uncached = times.transform_values { |t| summary(t, per_round) }
    results["get_secret_uncached"] = uncached["sdk"]
    results["raw_get"] = uncached["raw"]
  ensure
    raw&.finish
    client.close
    server.stop
  end

  report = {
    "benchmark" => "sdk_ruby_calls",
    "ruby" => RUBY_VERSION,
    "openssl" => OpenSSL::OPENSSL_LIBRARY_VERSION,
    "results" => results,
    "target_hit_us" => 5.0,
    "uncached_ratio" => (results["get_secret_uncached"]["median_us"] / results["raw_get"]["median_us"]).round(3),
    "uncached_cpu_ratio" => (results["get_secret_uncached"]["cpu_median_us"] /
                             results["raw_get"]["cpu_median_us"]).round(3),
    "target_uncached_ratio" => 1.1
  }
  text = JSON.pretty_generate(report)
  puts text
  File.write(options[:out], "#{text}\n") if options[:out]
end

main
