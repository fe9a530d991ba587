# frozen_string_literal: true

require "test_helper"
require "logger"
require "socket"

# An identity source whose snapshot and bundle a test replaces by hand, to
# stand for a renewal or a CA rotation without waiting for one.
class SwappableSource
  include Secinfra::Identity::Source

  attr_accessor :identity, :bundle
  attr_reader :server_id

  def initialize(identity, bundle, server_id: "spiffe://secinfra.local/secinfra/server")
    @identity = identity
    @bundle = bundle
    @server_id = server_id
  end

  def ensure_identity(_deadline_at = nil) = @identity

  def refresh_bundle = false

  def subscribe(_callable) = nil
end

# X509-SVIDs from the test CA, and a tiny keep-alive HTTP/1.1 responder
# behind Secinfra::MTLS::Server that answers each request with the peer's
# SPIFFE ID and certificate serial.
module MTLSSupport
  include TestCerts

  TD = "secinfra.local"
  SERVER_ID = "spiffe://#{TD}/orders"
  CLIENT_ID = "spiffe://#{TD}/billing"

  def test_ca = (@test_ca ||= ca(TD))

  def bundle_of(*cas) = Secinfra::TrustBundle.new(cas, sequence: 1, refresh_hint: nil)

  # An X509Identity for +uris+ (not checked, so a defective one can be made).
  def svid(uris, ca_pair: test_ca, serial: rand(1 << 40), **options)
    key = Secinfra::Identity.new_private_key
    cert = leaf(*ca_pair, key, Array(uris), serial: serial, **options)
    Secinfra::X509Identity.new(spiffe_id: Array(uris).first.to_s, chain: [cert].freeze, key: key,
                               serial: cert.serial.to_i.to_s(16), not_before: cert.not_before,
                               not_after: cert.not_after, issued_at: cert.not_before)
  end

  def source_for(uris, bundle: bundle_of(test_ca.first), **options)
    SwappableSource.new(svid(uris, **options), bundle)
  end

  def quiet_logger = Logger.new(File::NULL)

  # Serves +source+ with +authorizer+; returns the Server. Refusals go to #refusals,
  # handled requests to #handled.
  def start_server(source, authorizer)
    refusals
    handled
    server = Secinfra::MTLS.server(TCPServer.new("127.0.0.1", 0), source, authorizer: authorizer,
                                                                         logger: quiet_logger,
                                                                         on_refusal: ->(r) { @refusals << r },
                                                                         handshake_timeout: 5)
    thread = Thread.new { server.serve { |ssl| respond(ssl) } }
    (@servers ||= []) << [server, thread]
    server
  end

  def refusals = (@refusals ||= Queue.new)

  def handled = (@handled ||= Queue.new)

  def stop_servers
    @servers&.each do |server, thread|
      server.close
      thread.join(5)
    end
  end

  def respond(ssl)
    peer = Secinfra::MTLS.peer_id(ssl)
    while (line = ssl.gets)
      line = ssl.gets until line.nil? || line == "\r\n"
      handled << peer
      body = "#{peer} #{ssl.peer_cert.serial.to_i.to_s(16)}"
      ssl.write("HTTP/1.1 200 OK\r\nContent-Length: #{body.bytesize}\r\n\r\n#{body}")
    end
  end

  def client(server, source, authorizer = Secinfra::MTLS::Authorizer.id(SERVER_ID))
    http = Secinfra::MTLS.http("127.0.0.1", server.port, source, authorizer: authorizer, logger: quiet_logger)
    http.open_timeout = http.read_timeout = 5
    http.max_retries = 0
    http
  end

  # A raw TLS client connection with +context+ (an MTLS client context).
  def dial(server, context)
    ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new("127.0.0.1", server.port), context.current)
    ssl.sync_close = true
    ssl.connect
    ssl
  end

  def get(ssl)
    ssl.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    headers = []
    headers << ssl.gets until headers.last == "\r\n"
    length = headers.grep(/\AContent-Length:/i).first.split(":").last.to_i
    ssl.read(length)
  end
end
