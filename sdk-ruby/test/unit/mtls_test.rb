# frozen_string_literal: true

require "mtls_helper"

# Service-to-service mTLS (mtls/): real TLS over loopback with X509-SVIDs
# from the test CA, both directions, renewal and CA rotation without a
# restart, and every refusal rule.
class MTLSTest < Minitest::Test
  include MTLSSupport
  MTLS = Secinfra::MTLS
  Authorizer = Secinfra::MTLS::Authorizer

  # Errors a client sees when the server refused it after a TLS 1.3 handshake.
  REFUSED_BY_SERVER = [OpenSSL::SSL::SSLError, EOFError, IOError, Errno::ECONNRESET, Errno::EPIPE].freeze

  def teardown
    stop_servers
    super
  end

  def test_each_side_reads_the_others_verified_id
    server = start_server(source_for(SERVER_ID), Authorizer.id(CLIENT_ID))
    http = client(server, source_for(CLIENT_ID))
    body = http.start { |h| h.get("/").body }
    assert_match(/\A#{Regexp.escape(CLIENT_ID)} /, body, "the server's handler reads the client's ID")
    assert_equal SERVER_ID, http.peer_id, "the client reads the server's ID"
    assert_equal [CLIENT_ID], [handled.pop]
  end

  def test_a_kept_alive_connection_carries_many_requests
    server = start_server(source_for(SERVER_ID), Authorizer.any)
    http = client(server, source_for(CLIENT_ID))
    bodies = http.start { |h| Array.new(3) { h.get("/").body } }
    assert_equal 1, bodies.uniq.size
    assert_equal 3, handled.size
  end

  def refused_clients
    foreign_ca = ca("other.test", name: "foreign CA")
    [
      ["foreign trust domain, our CA", { uris: "spiffe://other.test/billing" }, :trust_domain],
      ["foreign trust domain, its own CA", { uris: "spiffe://other.test/billing", ca_pair: foreign_ca }, :untrusted],
      ["expired", { uris: CLIENT_ID, not_before: Time.now - 7200, not_after: Time.now - 60 }, :expired],
      ["not yet valid", { uris: CLIENT_ID, not_before: Time.now + 3600, not_after: Time.now + 7200 }, :expired],
      ["two URI SANs", { uris: [CLIENT_ID, "spiffe://#{TD}/admin"] }, :not_svid],
      ["no URI SAN", { uris: [], extensions: [] }, :not_svid],
      ["a URI SAN that is not a SPIFFE ID", { uris: "https://#{TD}/billing" }, :not_svid],
      ["a CA leaf", { uris: CLIENT_ID, extensions: [["basicConstraints", "CA:TRUE", true]] }, :ca_leaf],
      ["a leaf that signs certificates",
       { uris: CLIENT_ID, extensions: [["keyUsage", "digitalSignature,keyCertSign", true]] }, :ca_leaf],
      ["an ID the authorizer does not accept", { uris: "spiffe://#{TD}/intruder" }, :unauthorized]
    ]
  end

  def test_the_server_refuses_bad_clients_before_any_request
    server = start_server(source_for(SERVER_ID), Authorizer.id(CLIENT_ID))
    refused_clients.each do |name, spec, rule|
      uris = spec.delete(:uris)
      spec[:extensions] ||= []
      source = if Array(uris).empty?
                 SwappableSource.new(svid_without_sans(**spec), bundle_of(test_ca.first))
               else
                 source_for(uris, **spec)
               end
      assert_raises(*REFUSED_BY_SERVER, name) { client(server, source).start { |h| h.get("/") } }
      refusal = refusals.pop(timeout: 5)
      refute_nil refusal, name
      assert_equal rule, refusal.rule, "#{name}: #{refusal.message}"
      assert_match(/\Asecinfra: mtls: refused /, refusal.message)
      assert_equal(rule == :unauthorized ? "permission_denied" : "unauthenticated", refusal.code)
      refute_match(/PRIVATE KEY/, refusal.message)
    end
    assert_equal 0, handled.size, "no refused client reached the handler"
  end

  def test_the_refusal_names_the_rule_and_the_id
    server = start_server(source_for(SERVER_ID), Authorizer.one_of(CLIENT_ID, "spiffe://#{TD}/reports"))
    assert_raises(*REFUSED_BY_SERVER) { client(server, source_for("spiffe://#{TD}/intruder")).start { |h| h.get("/") } }
    refusal = refusals.pop(timeout: 5)
    assert_equal "spiffe://#{TD}/intruder", refusal.peer_id
    assert_equal "secinfra: mtls: refused peer spiffe://#{TD}/intruder: it is not accepted by the authorizer " \
                 "(it accepts one of #{CLIENT_ID}, spiffe://#{TD}/reports)", refusal.message
  end

  def test_a_client_without_a_certificate_is_refused
    server = start_server(source_for(SERVER_ID), Authorizer.any)
    context = OpenSSL::SSL::SSLContext.new
    context.cert_store = bundle_of(test_ca.first).store
    context.verify_mode = OpenSSL::SSL::VERIFY_PEER
    assert_raises(*REFUSED_BY_SERVER) do
      ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new("127.0.0.1", server.port), context)
      ssl.connect
      get(ssl)
    end
    assert_equal 0, handled.size
  end

  def test_a_predicate_that_raises_refuses
    server = start_server(source_for(SERVER_ID), Authorizer.predicate("a broken rule") { |_id| raise KeyError, "no" })
    assert_raises(*REFUSED_BY_SERVER) { client(server, source_for(CLIENT_ID)).start { |h| h.get("/") } }
    refusal = refusals.pop(timeout: 5)
    assert_equal :unauthorized, refusal.rule
    assert_match(/a broken rule raised KeyError/, refusal.message)
  end

  def test_the_client_refuses_a_server_before_sending
    cases = [
      ["another ID", source_for("spiffe://#{TD}/impostor"), :unauthorized],
      ["two URI SANs", source_for([SERVER_ID, "spiffe://#{TD}/impostor"]), :not_svid],
      ["a foreign CA", source_for(SERVER_ID, ca_pair: ca(TD, name: "rogue CA")), :untrusted]
    ]
    cases.each do |name, server_source, rule|
      server = start_server(server_source, Authorizer.any)
      error = assert_raises(MTLS::PeerRefused, name) { client(server, source_for(CLIENT_ID)).start { |h| h.get("/") } }
      assert_equal rule, error.rule, name
      assert_kind_of OpenSSL::SSL::SSLError, error.cause, "the OpenSSL error is the cause"
    end
    assert_equal 0, handled.size, "no request was sent to a refused server"
  end

  def test_a_renewal_takes_effect_on_the_next_handshake_and_old_connections_finish
    server_source = source_for(SERVER_ID)
    client_source = source_for(CLIENT_ID)
    server = start_server(server_source, Authorizer.id(CLIENT_ID))
    context = MTLS.client_context(client_source, authorizer: Authorizer.id(SERVER_ID), logger: quiet_logger)
    old = dial(server, context)
    first_client_serial = client_source.identity.serial
    assert_equal "#{CLIENT_ID} #{first_client_serial}", get(old)

    server_source.identity = svid(SERVER_ID)
    client_source.identity = svid(CLIENT_ID)
    fresh = dial(server, context)
    assert_equal server_source.identity.serial, fresh.peer_cert.serial.to_i.to_s(16), "the server presents its renewal"
    assert_equal "#{CLIENT_ID} #{client_source.identity.serial}", get(fresh), "the client presents its renewal"
    assert_equal "#{CLIENT_ID} #{first_client_serial}", get(old), "the old connection still works"
  ensure
    [old, fresh].compact.each(&:close)
  end

  def test_the_http_helper_loads_the_current_snapshot_on_every_new_connection
    server = start_server(source_for(SERVER_ID), Authorizer.id(CLIENT_ID))
    client_source = source_for(CLIENT_ID)
    http = client(server, client_source)
    first = http.start { |h| h.get("/").body }
    client_source.identity = svid(CLIENT_ID)
    client_source.bundle = bundle_of(test_ca.first, ca(TD, name: "next CA").first)
    second = http.start { |h| h.get("/").body }
    assert_equal "#{CLIENT_ID} #{client_source.identity.serial}", second, "the same Net::HTTP presents the renewal"
    refute_equal first, second
  end

  def test_a_ca_rotation_is_accepted_without_a_restart
    old_ca = test_ca
    new_ca = ca(TD, name: "next CA")
    server_source = source_for(SERVER_ID)
    server = start_server(server_source, Authorizer.any)
    new_ca_client = source_for(CLIENT_ID, ca_pair: new_ca, bundle: bundle_of(old_ca.first, new_ca.first))
    assert_raises(*REFUSED_BY_SERVER) { client(server, new_ca_client).start { |h| h.get("/") } }
    assert_equal :untrusted, refusals.pop(timeout: 5).rule, "the new CA is not trusted yet"

    server_source.bundle = bundle_of(old_ca.first, new_ca.first) # prepare: both CAs
    assert_match(/\A#{Regexp.escape(CLIENT_ID)} /, client(server, new_ca_client).start { |h| h.get("/").body })

    server_source.bundle = bundle_of(new_ca.first) # retire the old CA
    old_ca_client = source_for(CLIENT_ID, bundle: bundle_of(old_ca.first, new_ca.first))
    assert_raises(*REFUSED_BY_SERVER) { client(server, old_ca_client).start { |h| h.get("/") } }
    assert_equal :untrusted, refusals.pop(timeout: 5).rule, "a retired CA's leaf is refused"
  end

  def test_a_kept_server_context_switches_sni_clients_to_the_renewal
    server_source = source_for(SERVER_ID)
    kept = MTLS.server_context(server_source, authorizer: Authorizer.any, logger: quiet_logger)
    tcp = TCPServer.new("127.0.0.1", 0)
    listener = OpenSSL::SSL::SSLServer.new(tcp, kept)
    acceptor = Thread.new { listener.accept.close }
    server_source.identity = svid(SERVER_ID)
    context = MTLS.client_context(source_for(CLIENT_ID), authorizer: Authorizer.any, logger: quiet_logger)
    ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new("127.0.0.1", tcp.local_address.ip_port), context.current)
    ssl.hostname = "orders.internal"
    ssl.connect
    assert_equal server_source.identity.serial, ssl.peer_cert.serial.to_i.to_s(16)
    assert_same kept.current, kept.current, "a context is made once per snapshot"
  ensure
    ssl&.close
    acceptor&.join(5)
    tcp&.close
  end

  def test_no_default_authorizer
    source = source_for(SERVER_ID)
    assert_raises(ArgumentError) { MTLS.server_context(source) } # a missing keyword
    [nil, ->(_id) { true }, "spiffe://#{TD}/billing"].each do |wrong|
      error = assert_raises(ArgumentError) { MTLS.client_context(source, authorizer: wrong) }
      assert_match(/there is no default, and accepting any peer is Authorizer.any/, error.message)
    end
  end

  def test_peer_id_only_reads_a_verified_peer
    tcp = TCPServer.new("127.0.0.1", 0)
    plain = OpenSSL::SSL::SSLSocket.new(TCPSocket.new("127.0.0.1", tcp.local_address.ip_port))
    error = assert_raises(ArgumentError) { MTLS.peer_id(plain) }
    assert_match(/not made with a Secinfra::MTLS context/, error.message)
  ensure
    plain&.close
    tcp&.close
  end

  private

  def svid_without_sans(**)
    key = Secinfra::Identity.new_private_key
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = 7
    cert.subject = OpenSSL::X509::Name.parse("/CN=no-san")
    cert.issuer = test_ca.first.subject
    cert.public_key = key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    cert.sign(test_ca.last, OpenSSL::Digest.new("SHA256"))
    Secinfra::X509Identity.new(spiffe_id: "", chain: [cert].freeze, key: key, serial: "7",
                               not_before: cert.not_before, not_after: cert.not_after, issued_at: cert.not_before)
  end
end
