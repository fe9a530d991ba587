# frozen_string_literal: true

require_relative "server_helper"

# The SDK against a real reference server: enrolment, reads, errors, retries,
# idempotency, caching, deadlines and server verification.
class ClientTest < Minitest::Test
  include ServerTest

  UA = %r{\Asecinfra-ruby/[^ /()]+ \([^ /()]+/[^ /()]+\)\z}

  def test_enrol_read_and_cache
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/db", value: "hunter2")
    client, id = workload(folder: folder)
    assert_equal id, client.source.identity.spiffe_id
    first = Secinfra.capture { client.secrets.get_secret(name: "#{folder}/db") }
    assert_equal "hunter2", first.value.value
    assert_equal 1, first.last.attempts
    refute first.last.from_cache
    refute_nil first.last.request_id
    second = Secinfra.capture { client.secrets.get_secret(name: "#{folder}/db") }
    assert_equal 0, second.last.attempts
    assert second.last.from_cache
    whoami = client.identity.get_caller_identity
    assert_equal id, whoami.spiffe_id
  end

  def test_requests_carry_the_headers_of_the_spec
    folder = unique
    client, = workload(folder: folder)
    seq = last_seq
    client.secrets.put_secret(name: "#{folder}/a", value: "v")
    assert_raises(Secinfra::InvalidArgument) { client.secrets.get_secret(name: "#{folder}/a b") }
    put, = log_since(seq, "PutSecret")
    get, = log_since(seq, "GetSecret")
    assert_match UA, put["headers"]["User-Agent"]
    assert_equal "1", put["headers"]["Secinfra-Attempt"]
    assert_match(/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/,
                 put["headers"]["Idempotency-Key"])
    assert_nil get["headers"]["Idempotency-Key"]
    assert_equal "/v1/secrets/#{folder}/a b", get["path"].split("?").first, "one path, slashes kept (the log shows it decoded)"
  end

  def test_api_errors_are_typed
    folder = unique
    client, = workload(folder: folder)
    error = assert_raises(Secinfra::PermissionDenied) { client.secrets.get_secret(name: "#{unique}/x") }
    assert_equal "permission_denied", error.code
    assert_equal 403, error.status
    assert_equal 1, error.attempts
    refute error.retryable?
    refute_nil error.request_id
    assert error.to_s.end_with?("(request id #{error.request_id})")
    error = assert_raises(Secinfra::NotFound) { client.secrets.get_secret(name: "#{folder}/missing") }
    assert_equal "not_found", error.code
    error = assert_raises(Secinfra::InvalidArgument) { admin.secrets.get_secret(name: "Bad//Name") }
    assert_equal 400, error.status
    admin.secrets.put_secret(name: "#{folder}/cas", value: "1")
    error = assert_raises(Secinfra::FailedPrecondition) do
      admin.secrets.put_secret(name: "#{folder}/cas", value: "2", if_version: 7)
    end
    assert_equal "failed_precondition", error.code
  end

  def test_503s_are_retried_with_one_idempotency_key
    folder = unique
    client, = workload(folder: folder)
    server.script("PutSecret", [{ "status" => 503 }, { "status" => 503 }])
    seq = last_seq
    captured = Secinfra.capture { client.secrets.put_secret(name: "#{folder}/r", value: "x") }
    assert_equal 3, captured.last.attempts
    entries = log_since(seq, "PutSecret")
    assert_equal %w[1 2 3], entries.map { |e| e["headers"]["Secinfra-Attempt"] }
    assert_equal 1, entries.map { |e| e["headers"]["Idempotency-Key"] }.uniq.size
    assert_equal 1, captured.value.version
    assert_equal 491, client.budget.tokens, "two retries cost 5 each, the success refunds 1"
  end

  def test_unavailable_after_every_attempt_and_budget_spent
    folder = unique
    client, = workload(folder: folder, budget_capacity: 12)
    server.script("GetSecret", [{ "status" => 503, "headers" => { "Retry-After" => "0" } }] * 4)
    error = assert_raises(Secinfra::Unavailable) do
      client.secrets.get_secret(name: "#{folder}/x", call_options: Secinfra::CallOptions.new(use_cache: false))
    end
    assert_equal 3, error.attempts, "12 tokens pay for two retries"
    assert error.retryable?
    assert_equal 2, client.budget.tokens
  end

  def test_500_on_a_write_is_not_retried
    folder = unique
    client, = workload(folder: folder)
    server.script("PutSecret", [{ "status" => 500 }])
    error = assert_raises(Secinfra::InternalError) { client.secrets.put_secret(name: "#{folder}/y", value: "x") }
    assert_equal 1, error.attempts
    assert_equal "internal", error.code
  end

  def test_retry_after_over_the_cap_ends_at_once
    folder = unique
    client, = workload(folder: folder)
    server.script("GetSecret", [{ "status" => 429, "headers" => { "Retry-After" => "120" } }])
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    error = assert_raises(Secinfra::RateLimited) { client.secrets.get_secret(name: "#{folder}/x") }
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 2
    assert_equal 120.0, error.retry_after
    assert_equal 1, error.attempts
  end

  def test_connection_resets_end_as_transport_error
    folder = unique
    client, = workload(folder: folder)
    server.script("GetSecret", [{ "reset" => "before_headers" }] * 4)
    error = assert_raises(Secinfra::TransportError) { client.secrets.get_secret(name: "#{folder}/x") }
    refute_kind_of Secinfra::ApiError, error
    assert_nil error.status
    assert_equal 4, error.attempts
    refute_nil error.cause
  end

  def test_deadline_bounds_a_slow_answer
    folder = unique
    client, = workload(folder: folder)
    server.script("GetSecret", [{ "status" => 200, "body" => {}, "delay_ms" => 3000 }])
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    error = assert_raises(Secinfra::DeadlineExceeded) do
      client.secrets.get_secret(name: "#{folder}/x", call_options: Secinfra::CallOptions.new(deadline: 0.5))
    end
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    assert_operator elapsed, :<, 0.75
    assert_equal "deadline_exceeded", error.code
  end

  def test_stale_if_error_and_revalidation
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/s", value: "v1",
                             policy: Secinfra::Models::SecretPolicy.new(cache_max_age_seconds: 1,
                                                                        stale_if_error_seconds: 300))
    client, = workload(folder: folder)
    client.secrets.get_secret(name: "#{folder}/s")
    sleep 1.1
    seq = last_seq
    revalidated = Secinfra.capture { client.secrets.get_secret(name: "#{folder}/s") }
    assert_equal 304, revalidated.last.status
    assert revalidated.last.from_cache
    refute_nil log_since(seq, "GetSecret").first["headers"]["If-None-Match"]
    sleep 1.1
    server.script("GetSecret", [{ "status" => 503 }] * 4)
    stale = Secinfra.capture { client.secrets.get_secret(name: "#{folder}/s") }
    assert_equal "v1", stale.value.value
    assert stale.last.stale
    assert_equal 4, stale.last.attempts
  end

  def test_own_write_invalidates_and_single_flight
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/w", value: "old")
    client, = workload(folder: folder)
    assert_equal "old", client.secrets.get_secret(name: "#{folder}/w").value
    client.secrets.put_secret(name: "#{folder}/w", value: "new")
    assert_equal "new", client.secrets.get_secret(name: "#{folder}/w").value
    admin.secrets.put_secret(name: "#{folder}/sf", value: "x")
    server.script("GetSecret", [{ "pass" => true }])
    seq = last_seq
    values = Array.new(10) { Thread.new { client.secrets.get_secret(name: "#{folder}/sf").value } }.map(&:value)
    assert_equal ["x"] * 10, values
    assert_equal 1, log_since(seq, "GetSecret").size
  end

  def test_wrong_server_id_is_a_verification_failure
    client = Secinfra::Client.from_files(server.url, cert_file: File.join(server.data_dir, "admin", "cert.pem"),
                                                     key_file: File.join(server.data_dir, "admin", "key.pem"),
                                                     bundle_file: server.bundle_file,
                                                     server_id: "spiffe://secinfra.local/not-the-server")
    error = assert_raises(Secinfra::TransportError) { client.identity.get_caller_identity }
    assert_match(/expected spiffe:\/\/secinfra.local\/not-the-server/, error.message)
    assert_equal 1, error.attempts
    refute error.retryable?
  ensure
    client&.close
  end

  def test_untrusted_server_chain_is_refused
    other = OpenSSL::PKey::EC.generate("prime256v1")
    ca = OpenSSL::X509::Certificate.new
    ca.version = 2
    ca.serial = 9
    ca.subject = ca.issuer = OpenSSL::X509::Name.parse("/CN=other")
    ca.public_key = other
    ca.not_before = Time.now - 60
    ca.not_after = Time.now + 600
    ef = OpenSSL::X509::ExtensionFactory.new(ca, ca)
    ca.add_extension(ef.create_extension("basicConstraints", "CA:TRUE", true))
    ca.add_extension(ef.create_extension("subjectAltName", "URI:spiffe://secinfra.local", false))
    ca.sign(other, OpenSSL::Digest.new("SHA256"))
    source = Secinfra::StaticIdentity.new(Secinfra::Identity.load_bundle(ca.to_pem))
    client = Secinfra::Client.new(server.url, source)
    error = assert_raises(Secinfra::TransportError) { client.identity.get_trust_bundle }
    assert_match(/does not chain to the trust bundle/, error.message)
  ensure
    client&.close
  end

  def test_a_spent_join_token_is_unauthenticated_and_never_shown
    id = "spiffe://secinfra.local/ruby-test/#{SecureRandom.hex(4)}"
    token = server.join_token(id)
    Secinfra::Client.enrol(server.url, join_token: token, bundle_file: server.bundle_file).close
    error = assert_raises(Secinfra::Unauthenticated) do
      Secinfra::Client.enrol(server.url, join_token: token, bundle_file: server.bundle_file)
    end
    refute_includes error.to_s, token
    refute_includes error.inspect, token
  end

  def test_mtls_calls_need_an_identity
    client = Secinfra::Client.new(server.url, Secinfra::StaticIdentity.new(
      Secinfra::Identity.load_bundle(File.read(server.bundle_file))
    ))
    error = assert_raises(Secinfra::IdentityExpired) { client.secrets.get_secret(name: "a/b") }
    assert_equal 0, error.attempts
    refute_nil client.identity.get_trust_bundle.keys.first, "auth NONE calls still work"
  ensure
    client&.close
  end
end
