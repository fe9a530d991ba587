# frozen_string_literal: true

require_relative "server_helper"
require "tmpdir"

# Renewal with short-lived certificates, rotation events, new connections
# presenting the new identity, and conditional bundle refreshes.
class RotationTest < Minitest::Test
  def server = SharedServer.get(leaf_ttl_seconds: 4, bundle_refresh_hint_seconds: 2)

  def test_renews_before_expiry_and_reports_events
    id = "spiffe://secinfra.local/ruby-test/rotation"
    events = Queue.new
    client = server.enrol(id)
    client.on_rotation { |e| events << e }
    sink_dir = Dir.mktmpdir("secinfra-sink-")
    Secinfra::FileSink.attach(client, sink_dir)
    first = client.source.identity
    deadline = Time.now + 8
    serials = [first.serial]
    while Time.now < deadline
      whoami = client.identity.get_caller_identity
      assert_equal id, whoami.spiffe_id
      serials << client.source.identity.serial
      sleep 0.25
    end
    assert_operator serials.uniq.size, :>=, 3, "renewed at least twice in 8 s with 4 s certificates"
    kinds = []
    kinds << events.pop.kind until events.empty?
    assert_includes kinds, :renewed
    seen = server.requests(rpc: "GetCallerIdentity").map { |r| r["client_serial"] }.uniq
    assert_operator seen.size, :>=, 3, "new connections present the new certificates"
    renewals = server.requests(rpc: "RenewCertificate")
    assert(renewals.all? { |r| r["status"] == 200 })
    sleep 0.2 # events are delivered by the client's event thread
    on_disk = OpenSSL::X509::Certificate.new(File.read(File.join(sink_dir, "cert.pem")))
    key = OpenSSL::PKey.read(File.read(File.join(sink_dir, "key.pem")))
    assert_equal on_disk.public_key.public_to_der, key.public_to_der
    assert_includes serials + [client.source.identity.serial], on_disk.serial.to_i.to_s(16)
    refute_equal first.serial, on_disk.serial.to_i.to_s(16), "the sink follows renewals"
  ensure
    client&.close
    FileUtils.rm_rf(sink_dir) if sink_dir
  end

  def test_bundle_refreshes_are_conditional_and_a_304_keeps_the_bundle
    seq = server.requests.map { |r| r["seq"] }.max || 0
    client = server.enrol("spiffe://secinfra.local/ruby-test/bundle-#{SecureRandom.hex(4)}")
    held = client.source.bundle
    sleep 4.6 # the hint is 2 s: two refreshes at least
    fetches = server.requests(rpc: "GetTrustBundle").select { |r| r["seq"] > seq }
    assert_operator fetches.size, :>=, 3, "the fetch after enrolment and two refreshes"
    first, *refreshes = fetches
    assert_nil first["headers"]["If-None-Match"], "nothing to revalidate yet"
    assert_equal 200, first["status"]
    refreshes.each do |r|
      refute_nil r["headers"]["If-None-Match"], "a refresh is conditional on the last bundle's ETag (10.2.2)"
      assert_equal 304, r["status"]
    end
    assert_same held, client.source.bundle, "a 304 keeps the held bundle"
  ensure
    client&.close
  end
end
