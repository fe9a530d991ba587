# frozen_string_literal: true

require_relative "server_helper"
require "mtls_helper"

# Two workloads enrolled with the reference server call each other over
# mTLS from their clients' rotating sources: each reads the other's ID, a
# renewal takes effect on the next handshake while an old connection
# finishes, and a CA rotation is accepted without a restart.
class MTLSIntegrationTest < Minitest::Test
  include MTLSSupport
  MTLS = Secinfra::MTLS
  Authorizer = Secinfra::MTLS::Authorizer

  def teardown
    stop_servers
    @clients&.each(&:close)
    super
  end

  def enrol(server, name)
    id = "spiffe://secinfra.local/ruby-mtls/#{name}-#{SecureRandom.hex(4)}"
    client = server.enrol(id)
    (@clients ||= []) << client
    [client, id]
  end

  def serial_of(cert) = cert.serial.to_i.to_s(16)

  def test_renewals_take_effect_on_the_next_handshake_and_old_connections_finish
    # A server of its own: RotationTest's checks every renewal its server logged.
    ca_server = SharedServer.get(leaf_ttl_seconds: 4)
    orders, orders_id = enrol(ca_server, "orders")
    billing, billing_id = enrol(ca_server, "billing")
    server = start_server(orders.source, Authorizer.id(billing_id))
    context = MTLS.client_context(billing.source, authorizer: Authorizer.id(orders_id), logger: quiet_logger)
    old = dial(server, context)
    old_client_serial = get(old).split.last
    assert_equal orders_id, MTLS.peer_id(old)

    server_serials = [serial_of(old.peer_cert)]
    client_serials = [old_client_serial]
    deadline = Time.now + 8
    while Time.now < deadline && (server_serials.uniq.size < 2 || client_serials.uniq.size < 2)
      sleep 0.2
      fresh = dial(server, context)
      server_serials << serial_of(fresh.peer_cert)
      peer, serial = get(fresh).split
      assert_equal billing_id, peer
      client_serials << serial
      fresh.close
    end
    assert_operator server_serials.uniq.size, :>=, 2, "a new handshake presents the server's renewed certificate"
    assert_operator client_serials.uniq.size, :>=, 2, "a new handshake presents the client's renewed certificate"
    assert_equal "#{billing_id} #{old_client_serial}", get(old), "the connection from before the renewal still works"
  ensure
    old&.close
  end

  def test_a_ca_rotation_is_accepted_without_a_restart
    ca_server = SharedServer.get(bundle_refresh_hint_seconds: 1)
    orders, orders_id = enrol(ca_server, "orders")
    server = start_server(orders.source, Authorizer.member_of("secinfra.local"))
    billing_id = "spiffe://secinfra.local/ruby-mtls/billing-#{SecureRandom.hex(4)}"
    token = ca_server.join_token(billing_id) # the admin files trust the old CA only
    admin = ca_server.admin_client
    admin.identity.prepare_ca_rotation
    deadline = Time.now + 6
    sleep 0.1 until orders.source.bundle.certificates.size == 2 || Time.now > deadline
    assert_equal 2, orders.source.bundle.certificates.size, "the serving workload refreshed its bundle"
    admin.identity.activate_ca
    billing = Secinfra::Client.enrol(ca_server.url, join_token: token, bundle_pem: orders.source.bundle.pem)
    @clients << billing
    refute_equal orders.source.identity.leaf.issuer.to_der, billing.source.identity.leaf.issuer.to_der,
                 "billing's certificate comes from the new CA"

    http = client(server, billing.source, Authorizer.id(orders_id))
    body = http.start { |h| h.get("/").body }
    assert_equal billing_id, body.split.first, "a new-CA client is accepted by a server started before the rotation"
    assert_equal orders_id, http.peer_id
  ensure
    admin&.close
  end
end
