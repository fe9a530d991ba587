# frozen_string_literal: true

require_relative "server_helper"
require "socket"

# Several endpoints (spec 12) against the real reference server: each
# endpoint is a TCP relay on loopback to the one server (so TLS, the server's
# certificate and its request log are real), which the test can stop to make
# an endpoint refuse connections. Replicas on one PostgreSQL are the
# conformance suite's (conformance/cases/endpoints.yaml).
class EndpointsIntegrationTest < Minitest::Test
  include ServerTest

  # Forwards every connection to the server's port until closed; closing
  # refuses new connections and cuts the open ones.
  class Relay
    attr_reader :connections, :url

    def initialize(port)
      @target = port
      @listener = TCPServer.new("127.0.0.1", 0)
      @url = "https://127.0.0.1:#{@listener.local_address.ip_port}"
      @connections = 0
      @sockets = []
      @lock = Mutex.new
      @thread = Thread.new { accept_loop }
    end

    def close
      @listener.close unless @listener.closed?
      @lock.synchronize { @sockets.dup }.each { |s| s.close unless s.closed? }
      @thread.join(5)
    end

    private

    def accept_loop
      loop do
        client = @listener.accept
        upstream = TCPSocket.new("127.0.0.1", @target)
        @lock.synchronize do
          @connections += 1
          @sockets.push(client, upstream)
        end
        [[client, upstream], [upstream, client]].each { |from, to| Thread.new { pipe(from, to) } }
      end
    rescue IOError, SystemCallError
      nil # closed
    end

    def pipe(from, to)
      loop { to.write(from.readpartial(16 * 1024)) }
    rescue IOError, SystemCallError
      [from, to].each { |s| s.close unless s.closed? }
    end
  end

  def relays(count)
    port = URI.parse(server.url).port
    @relays = Array.new(count) { Relay.new(port) }
  end

  def teardown
    @relays&.each(&:close)
    super
  end

  def test_one_url_behaves_as_before_and_reports_its_endpoint
    folder = unique
    client, = workload(folder: folder)
    admin.secrets.put_secret(name: "#{folder}/a", value: "v")
    captured = Secinfra.capture { client.secrets.get_secret(name: "#{folder}/a") }
    assert_equal server.url, captured.last.endpoint
    assert_equal [server.url], client.endpoints.map(&:url)
  end

  def test_enrolment_and_calls_move_past_a_stopped_endpoint_and_return_once_it_cooled
    a, b = relays(2)
    a.close
    folder = unique
    id = "spiffe://secinfra.local/ruby-test/#{SecureRandom.hex(4)}"
    server.grant(id, "writer", "folder:#{folder}/")
    client = Secinfra::Client.enrol([a.url, b.url], join_token: server.join_token(id), bundle_file: server.bundle_file,
                                                    endpoint_order: :listed, endpoint_cooldown: 0.5,
                                                    endpoint_cooldown_max: 0.5)
    (@clients ||= []) << client
    assert_equal id, client.source.identity.spiffe_id, "the enrolment moved to b"
    home = client.endpoints.first
    assert_equal [a.url, 1], [home.url, home.failures]
    refute_nil home.cooling_until
    captured = Secinfra.capture { client.secrets.put_secret(name: "#{folder}/x", value: "1") }
    assert_equal [b.url, 1], [captured.last.endpoint, captured.last.attempts], "a is cooling: straight to b"
    sleep 0.6
    captured = Secinfra.capture { client.secrets.put_secret(name: "#{folder}/x", value: "2") }
    assert_equal [b.url, 2], [captured.last.endpoint, captured.last.attempts], "a is tried again, refuses, b answers"
    assert_equal 2, client.endpoints.first.failures
  end

  def test_a_503_moves_a_keyed_write_with_its_idempotency_key
    a, b = relays(2)
    folder = unique
    id = "spiffe://secinfra.local/ruby-test/#{SecureRandom.hex(4)}"
    server.grant(id, "writer", "folder:#{folder}/")
    client = Secinfra::Client.enrol([a.url, b.url], join_token: server.join_token(id), bundle_file: server.bundle_file,
                                                    endpoint_order: :listed)
    (@clients ||= []) << client
    server.script("PutSecret", [{ "status" => 503 }])
    seq = last_seq
    captured = Secinfra.capture { client.secrets.put_secret(name: "#{folder}/k", value: "v") }
    assert_equal [b.url, 2], [captured.last.endpoint, captured.last.attempts]
    puts = log_since(seq, "PutSecret")
    assert_equal 2, puts.size
    assert_equal(%w[1 2], puts.map { |r| r["headers"]["Secinfra-Attempt"] })
    assert_equal 1, puts.map { |r| r["headers"]["Idempotency-Key"] }.uniq.size, "one key on both endpoints"
    assert_equal 1, client.endpoints.first.failures, "the 503 cooled a down"
    assert_operator a.connections, :>=, 1
    assert_operator b.connections, :>=, 1
  end

  def test_an_endpoint_stopped_between_calls_moves_the_next_call
    a, b = relays(2)
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/r", value: "v")
    id = "spiffe://secinfra.local/ruby-test/#{SecureRandom.hex(4)}"
    server.grant(id, "reader", "folder:#{folder}/")
    client = Secinfra::Client.enrol([a.url, b.url], join_token: server.join_token(id), bundle_file: server.bundle_file,
                                                    endpoint_order: :listed, use_cache: false)
    (@clients ||= []) << client
    first = Secinfra.capture { client.secrets.get_secret(name: "#{folder}/r") }
    assert_equal a.url, first.last.endpoint
    a.close
    second = Secinfra.capture { client.secrets.get_secret(name: "#{folder}/r") }
    assert_equal "v", second.value.value
    assert_equal b.url, second.last.endpoint
    assert_operator second.last.attempts, :>=, 2, "the failure on a was an attempt"
  end
end
