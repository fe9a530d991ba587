# frozen_string_literal: true

require "test_helper"
require "securerandom"

# One reference server (test mode, real TLS on loopback) shared by the
# integration tests of this process; stopped at exit.
module SharedServer
  @lock = Mutex.new
  @servers = {}

  # The server started with +settings+ (started on first use).
  def self.get(**settings)
    @lock.synchronize do
      @servers[settings] ||= Secinfra::Testing::ReferenceServer.new(**settings).start
    end
  end

  def self.stop_all
    @lock.synchronize do
      @servers.each_value(&:stop)
      @servers.clear
    end
  end

  Minitest.after_run { stop_all }
end

# Helpers for tests against the shared server.
module ServerTest
  def server = SharedServer.get

  def admin
    @admin ||= server.admin_client
  end

  def teardown
    server.control("DELETE", "/_test/scripts")
    @clients&.each(&:close)
    @admin&.close
    super
  end

  # A new workload enrolled with a fresh join token and granted reader on +folder+.
  def workload(folder: nil, **settings)
    id = "spiffe://secinfra.local/ruby-test/#{SecureRandom.hex(4)}"
    server.grant(id, "reader", "folder:#{folder}/") if folder
    server.grant(id, "writer", "folder:#{folder}/") if folder
    client = server.enrol(id, **settings)
    (@clients ||= []) << client
    [client, id]
  end

  def unique(prefix = "ruby") = "#{prefix}-#{SecureRandom.hex(4)}"

  def log_since(seq, rpc)
    server.requests(rpc: rpc).select { |r| r["seq"] > seq }
  end

  def last_seq
    server.requests.map { |r| r["seq"] }.max || 0
  end
end
