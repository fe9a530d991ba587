# frozen_string_literal: true

require "test_helper"

# The call pipeline (runtime/call.rb) over a scripted transport: the
# revalidating reads the client's own bundle refreshes make (spec 7.12.2,
# 10.2.2).
class CallTest < Minitest::Test
  include TestCerts
  Runtime = Secinfra::Runtime
  BUNDLE_BODY = JSON.generate({ "keys" => [], "spiffe_sequence" => 3, "spiffe_refresh_hint" => 300 })

  # Answers exchanges from a script and records the requests.
  class ScriptedTransport
    attr_reader :requests

    attr_reader :endpoints

    def initialize(answers, clock)
      @answers = answers
      @requests = []
      @endpoints = Secinfra::Runtime::EndpointSet.new("https://127.0.0.1:1", clock: clock, random: Random.new(1))
    end

    def exchange(request, endpoint:, mtls:, identity:, timeout:)
      raise "the one endpoint" unless endpoint.equal?(@endpoints.home)
      raise "an auth-NONE call presents no identity" if mtls || identity || !timeout.positive?

      @requests << request.headers.dup
      @answers.shift or raise "no answer scripted"
    end

    def close = nil
  end

  def ok(etag, cache_control = "max-age=60")
    Runtime::Answer.new(200, { "etag" => etag, "cache-control" => cache_control }, BUNDLE_BODY, 0)
  end

  def not_modified(etag) = Runtime::Answer.new(304, { "etag" => etag, "cache-control" => "max-age=60" }, "", 0)

  def unavailable
    Runtime::Answer.new(503, { "secinfra-should-retry" => "false" },
                        JSON.generate({ "error" => { "code" => "unavailable", "message" => "scripted" } }), 0)
  end

  def setup
    @clock = Secinfra::Testing::FakeClock.new
  end

  def pipeline(answers)
    @transport = ScriptedTransport.new(answers, @clock)
    source = Secinfra::StaticIdentity.new(Secinfra::Identity.load_bundle(ca.first.to_pem))
    Runtime::CallPipeline.new(@transport, source, policy: Runtime::RetryPolicy.new, budget: Runtime::RetryBudget.new,
                                                  cache: Runtime::ResponseCache.new(clock: @clock), clock: @clock,
                                                  random: Random.new(1))
  end

  def bundles(answers) = Secinfra::V1::IdentityClient.new(pipeline(answers))

  def test_the_pipeline_is_the_invoker_generated_clients_call
    assert_kind_of Secinfra::RPC::Invoker, pipeline([])
  end

  def test_a_revalidating_read_reaches_the_server_despite_a_fresh_entry_and_a_304_keeps_the_value
    client = bundles([ok('"b3"'), not_modified('"b3"')])
    first = client.get_trust_bundle
    assert_equal first, client.get_trust_bundle, "fresh: from the cache"
    assert_equal 1, @transport.requests.size
    captured = Secinfra.capture { client.get_trust_bundle(call_options: Secinfra::CallOptions.new(revalidate: true)) }
    assert_equal 2, @transport.requests.size, "a revalidating read always reaches the server"
    assert_equal '"b3"', @transport.requests.last["If-None-Match"], "conditional on the last ETag"
    assert_nil @transport.requests.first["If-None-Match"]
    assert_equal first, captured.value, "a 304 answers with the held value"
    assert_equal 304, captured.last.status
    assert captured.last.from_cache
  end

  def test_a_revalidating_read_is_never_answered_from_a_stale_entry
    client = bundles([ok('"b3"', "max-age=1, stale-if-error=300"), unavailable, unavailable])
    held = client.get_trust_bundle
    @clock.advance(2)
    stale = Secinfra.capture { client.get_trust_bundle }
    assert_equal held, stale.value, "an ordinary read falls back to the stale entry"
    assert stale.last.stale
    error = assert_raises(Secinfra::Unavailable) do
      client.get_trust_bundle(call_options: Secinfra::CallOptions.new(revalidate: true))
    end
    assert_equal "unavailable", error.code
    assert_equal 3, @transport.requests.size
  end
end
